//! extfs (placeholder: being written)
