//! The directory records: views, bindings, contact states.
