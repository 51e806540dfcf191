//! vmdk (placeholder: being written)
