//! Tests of the file source against a real lake in a temporary folder.
