//! lvm2 (placeholder: being written)
