//! tlog (in progress)
