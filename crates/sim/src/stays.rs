//! What case-based payment needs of the generated stays (issue 9).
