//! Reform indicators (issue 8): definitions as data, computed from the events tiercare records.
