//! devices (in progress)
