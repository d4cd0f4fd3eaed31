//! Generated results and orders with realistic repeat behaviour (issue 5).
