//! Lab and imaging results (issue 5): reports, observations and their validation.
