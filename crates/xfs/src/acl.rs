//! Attribute names in the generic Linux form, and POSIX ACLs.
//!
//! Namespaces come from the entry flags (fs/xfs/xfs_xattr.c
//! xfs_xattr_put_listent()): XFS_ATTR_ROOT is `trusted.`, XFS_ATTR_SECURE is
//! `security.`, neither is `user.`. ACLs are stored as the root-namespace
//! attributes `SGI_ACL_FILE` / `SGI_ACL_DEFAULT` holding big-endian `struct
//! xfs_acl` (xfs_format.h / xfs_acl.h: count, then {tag, id, perm, pad}
//! entries). The kernel lists them as `system.posix_acl_access` /
//! `system.posix_acl_default` and, to a caller with CAP_SYS_ADMIN, also under
//! their `trusted.` names; both are returned here, the `system.` ones converted
//! to the little-endian posix_acl_xattr version 2 format
//! (include/uapi/linux/posix_acl_xattr.h) as getxattr(2) returns it.

use fsapi::Xattr;

use crate::attr::{RawAttr, ATTR_ROOT, ATTR_SECURE};
use crate::bytes::us;
use crate::Filesystem;
use bytesource::field::{be_u16, be_u32};

/// The ACL tag values are Linux's (ACL_USER_OBJ 1, ACL_USER 2, ACL_GROUP_OBJ 4,
/// ACL_GROUP 8, ACL_MASK 0x10, ACL_OTHER 0x20; include/linux/posix_acl.h).
const ACL_USER: u32 = 0x02;
const ACL_GROUP: u32 = 0x08;
/// ACL_UNDEFINED_ID: the id of entries that are not named users or groups.
const UNDEFINED_ID: u32 = u32::MAX;
const POSIX_ACL_XATTR_VERSION: u32 = 2;

/// Converts an on-disk xfs_acl into posix_acl_xattr form, `None` when malformed.
fn convert(v: &[u8]) -> Option<Vec<u8>> {
    let count = us(be_u32(v, 0)?);
    if count.checked_mul(12)?.checked_add(4)? != v.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count.saturating_mul(8).saturating_add(4));
    out.extend_from_slice(&POSIX_ACL_XATTR_VERSION.to_le_bytes());
    for i in 0..count {
        let e = i.checked_mul(12)?.checked_add(4)?;
        let tag = be_u32(v, e)?;
        let id = be_u32(v, e.checked_add(4)?)?;
        let perm = be_u16(v, e.checked_add(8)?)?;
        let id = if tag == ACL_USER || tag == ACL_GROUP {
            id
        } else {
            UNDEFINED_ID
        };
        out.extend_from_slice(&u16::try_from(tag).ok()?.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Some(out)
}

/// Maps stored attributes to what listxattr/getxattr show.
pub(crate) fn to_linux(fs: &Filesystem, ino: u64, raw: Vec<RawAttr>) -> Vec<Xattr> {
    let mut out = Vec::with_capacity(raw.len());
    for a in raw {
        let prefix: &[u8] = if a.flags & ATTR_ROOT != 0 {
            b"trusted."
        } else if a.flags & ATTR_SECURE != 0 {
            b"security."
        } else {
            b"user."
        };
        if a.flags & ATTR_ROOT != 0 {
            let sys: Option<&[u8]> = match &a.name[..] {
                b"SGI_ACL_FILE" => Some(b"system.posix_acl_access"),
                b"SGI_ACL_DEFAULT" => Some(b"system.posix_acl_default"),
                _ => None,
            };
            if let Some(sys) = sys {
                match convert(&a.value) {
                    Some(value) => out.push(Xattr {
                        name: sys.to_vec(),
                        value,
                    }),
                    None => fs.warn(format!(
                        "inode {ino}: malformed ACL in trusted.{}",
                        String::from_utf8_lossy(&a.name)
                    )),
                }
            }
        }
        let mut name = prefix.to_vec();
        name.extend_from_slice(&a.name);
        out.push(Xattr {
            name,
            value: a.value,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_user_obj_and_named_user() {
        let mut v = 2u32.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 9, 0, 6, 0, 0]);
        v.extend_from_slice(&[0, 0, 0, 2, 0, 0, 3, 232, 0, 4, 0, 0]);
        let out = convert(&v).unwrap();
        assert_eq!(
            out,
            vec![2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 2, 0, 4, 0, 232, 3, 0, 0]
        );
    }
}
