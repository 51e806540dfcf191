//! md raid6: where each row's data, P and Q chunks live, and rebuilding up to two
//! missing chunks of a row from P and Q.
//!
//! Math (`lib/raid6/` and H. Peter Anvin, "The mathematics of RAID-6"): P is the
//! XOR of the data chunks; Q = Σ g^c·D_c over GF(2^8) with generator g = 2 and
//! polynomial x^8+x^4+x^3+x^2+1 (0x11d), c being each data chunk's syndrome slot.
//!
//! Layouts (`raid5_compute_sector` in `drivers/md/raid5.c`; lvm2's segment types
//! map to md algorithms through dm-raid's `raid_types` table): `raid6`/`raid6_zr` =
//! ALGORITHM_ROTATING_ZERO_RESTART, `raid6_nr` = ROTATING_N_RESTART, `raid6_nc` =
//! ROTATING_N_CONTINUE (these three are the "DDF" layouts: a chunk's Q slot is its
//! disk number), `raid6_{la,ra,ls,rs}_6` = the raid5 layouts on all but the last
//! disk with Q on the last disk, `raid6_n_6` = ALGORITHM_PARITY_N (P and Q on the
//! last two disks). For the non-DDF layouts the Q slots count data disks starting
//! after the Q disk (`raid6_d0`, `raid6_idx_to_slot` in raid5.c).

use std::io;

/// exp and log tables of GF(2^8) with generator 2 over 0x11d, built at compile
/// time (constant loop indices below 512, so indexing and casts cannot fail).
#[allow(
    clippy::as_conversions,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
const GF: ([u8; 512], [u8; 256]) = {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u32 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= 0x11d;
        }
        i += 1;
    }
    (exp, log)
};

fn gf_exp(i: usize) -> u8 {
    GF.0.get(i.checked_rem(255).unwrap_or(0))
        .copied()
        .unwrap_or(0)
}

fn gf_log(a: u8) -> usize {
    usize::from(GF.1.get(usize::from(a)).copied().unwrap_or(0))
}

/// a·b in GF(2^8).
pub fn gf_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    gf_exp(gf_log(a).saturating_add(gf_log(b)))
}

/// 1/a in GF(2^8) (0 for 0).
pub fn gf_inv(a: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    gf_exp(255usize.saturating_sub(gf_log(a)))
}

/// g^c for syndrome slot c.
pub fn gf_pow2(c: u64) -> u8 {
    gf_exp(usize::try_from(c.checked_rem(255).unwrap_or(0)).unwrap_or(0))
}

/// An md raid6 algorithm, as lvm2 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raid6Layout {
    /// `raid6`, `raid6_zr`: ALGORITHM_ROTATING_ZERO_RESTART.
    ZeroRestart,
    /// `raid6_nr`: ALGORITHM_ROTATING_N_RESTART.
    NRestart,
    /// `raid6_nc`: ALGORITHM_ROTATING_N_CONTINUE.
    NContinue,
    /// `raid6_la_6`: ALGORITHM_LEFT_ASYMMETRIC_6.
    LeftAsymmetric6,
    /// `raid6_ra_6`: ALGORITHM_RIGHT_ASYMMETRIC_6.
    RightAsymmetric6,
    /// `raid6_ls_6`: ALGORITHM_LEFT_SYMMETRIC_6.
    LeftSymmetric6,
    /// `raid6_rs_6`: ALGORITHM_RIGHT_SYMMETRIC_6.
    RightSymmetric6,
    /// `raid6_n_6`: ALGORITHM_PARITY_N.
    ParityN,
}

/// One row of an array: which disk holds P, Q and each data chunk, and each
/// data chunk's Q syndrome slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// P disk.
    pub p: u64,
    /// Q disk.
    pub q: u64,
    /// Disk of data chunk k of the row.
    pub data: Vec<u64>,
    /// Q slot of data chunk k.
    pub slot: Vec<u64>,
}

impl Raid6Layout {
    /// The layout named by an lvm2 segment type.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "raid6" | "raid6_zr" => Self::ZeroRestart,
            "raid6_nr" => Self::NRestart,
            "raid6_nc" => Self::NContinue,
            "raid6_la_6" => Self::LeftAsymmetric6,
            "raid6_ra_6" => Self::RightAsymmetric6,
            "raid6_ls_6" => Self::LeftSymmetric6,
            "raid6_rs_6" => Self::RightSymmetric6,
            "raid6_n_6" => Self::ParityN,
            _ => return None,
        })
    }

    fn ddf(self) -> bool {
        matches!(self, Self::ZeroRestart | Self::NRestart | Self::NContinue)
    }

    /// Disk of data chunk `k` in row `row` of an `n`-disk array, and the row's P
    /// and Q disks: `raid5_compute_sector`'s `case 6` arms.
    fn disks(self, row: u64, k: u64, n: u64) -> Option<(u64, u64, u64)> {
        let data = n.checked_sub(2).filter(|&d| d > 0)?;
        if k >= data {
            return None;
        }
        let last = n.checked_sub(1)?;
        // "Asymmetric" placement around a P disk followed by Q: Q D D D P when P is
        // last, else data skips P and Q.
        let asym = |pd: u64| -> Option<(u64, u64, u64)> {
            if pd == last {
                Some((k.checked_add(1)?, pd, 0))
            } else if k >= pd {
                Some((k.checked_add(2)?, pd, pd.checked_add(1)?))
            } else {
                Some((k, pd, pd.checked_add(1)?))
            }
        };
        match self {
            Self::ZeroRestart => asym(row.checked_rem(n)?),
            Self::NRestart => asym(last.checked_sub(row.checked_add(1)?.checked_rem(n)?)?),
            Self::NContinue => {
                let pd = last.checked_sub(row.checked_rem(n)?)?;
                let qd = pd.checked_add(last)?.checked_rem(n)?;
                let dd = pd.checked_add(1)?.checked_add(k)?.checked_rem(n)?;
                Some((dd, pd, qd))
            }
            Self::LeftAsymmetric6 | Self::RightAsymmetric6 => {
                let r = row.checked_rem(last)?;
                let pd = if self == Self::LeftAsymmetric6 {
                    data.checked_sub(r)?
                } else {
                    r
                };
                let dd = if k >= pd { k.checked_add(1)? } else { k };
                Some((dd, pd, last))
            }
            Self::LeftSymmetric6 | Self::RightSymmetric6 => {
                let r = row.checked_rem(last)?;
                let pd = if self == Self::LeftSymmetric6 {
                    data.checked_sub(r)?
                } else {
                    r
                };
                let dd = pd.checked_add(1)?.checked_add(k)?.checked_rem(last)?;
                Some((dd, pd, last))
            }
            Self::ParityN => Some((k, data, last)),
        }
    }

    /// Row `row` of an `n`-disk array.
    pub fn row(self, row: u64, n: u64) -> Option<Row> {
        let data_disks = n.checked_sub(2).filter(|&d| d > 0)?;
        let mut r = Row {
            p: 0,
            q: 0,
            data: Vec::new(),
            slot: Vec::new(),
        };
        for k in 0..data_disks {
            let (dd, pd, qd) = self.disks(row, k, n)?;
            r.data.push(dd);
            r.p = pd;
            r.q = qd;
        }
        if self.ddf() {
            r.slot = r.data.clone();
        } else {
            // Slots count data disks from the one after Q (disk 0 when Q is last).
            let d0 = if r.q == n.checked_sub(1)? {
                0
            } else {
                r.q.checked_add(1)?
            };
            r.slot = r
                .data
                .iter()
                .map(|&d| {
                    // Data disks met going round from d0 before reaching d.
                    let dist = d.checked_add(n)?.checked_sub(d0)?.checked_rem(n)?;
                    let skipped = [r.p, r.q]
                        .iter()
                        .filter(|&&x| {
                            x.checked_add(n)
                                .and_then(|y| y.checked_sub(d0))
                                .and_then(|y| y.checked_rem(n))
                                .is_some_and(|y| y < dist)
                        })
                        .count();
                    dist.checked_sub(u64::try_from(skipped).ok()?)
                })
                .collect::<Option<Vec<u64>>>()?;
        }
        Some(r)
    }
}

/// Reads data chunk `k` of `row` into `buf`: from its own disk, else rebuilt
/// from P and/or Q and the other data chunks (at most two disks of a row may
/// fail). `read(disk, buf)` reads the same byte range of another disk.
pub fn read_chunk(
    row: &Row,
    k: usize,
    buf: &mut [u8],
    mut read: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<()> {
    let target = *row
        .data
        .get(k)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "raid6: bad data index"))?;
    let first_err = match read(target, buf) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let len = buf.len();
    let mut get = |d: u64| -> Option<Vec<u8>> {
        let mut v = vec![0u8; len];
        read(d, &mut v).ok().map(|()| v)
    };
    let p = get(row.p);
    let q = get(row.q);
    // Partial syndromes of the data chunks that read: Σ D and Σ g^c·D.
    let mut px = vec![0u8; len];
    let mut qx = vec![0u8; len];
    let mut missing = vec![k];
    for (j, (&d, &c)) in row.data.iter().zip(&row.slot).enumerate() {
        if j == k {
            continue;
        }
        match get(d) {
            Some(v) => {
                let g = gf_pow2(c);
                for ((a, b), &x) in px.iter_mut().zip(qx.iter_mut()).zip(&v) {
                    *a ^= x;
                    *b ^= gf_mul(g, x);
                }
            }
            None => missing.push(j),
        }
    }
    let slot = |j: usize| row.slot.get(j).copied().unwrap_or(0);
    match (missing.as_slice(), p, q) {
        ([_], Some(p), _) => {
            for ((o, &a), &b) in buf.iter_mut().zip(&px).zip(&p) {
                *o = a ^ b;
            }
            Ok(())
        }
        ([_], None, Some(q)) => {
            let inv = gf_inv(gf_pow2(slot(k)));
            for ((o, &a), &b) in buf.iter_mut().zip(&qx).zip(&q) {
                *o = gf_mul(inv, a ^ b);
            }
            Ok(())
        }
        ([_, other], Some(p), Some(q)) => {
            // Pxy = Dx ^ Dy, Qxy = gx·Dx ^ gy·Dy  =>  Dx = (Qxy ^ gy·Pxy) / (gx ^ gy).
            let gx = gf_pow2(slot(k));
            let gy = gf_pow2(slot(*other));
            let inv = gf_inv(gx ^ gy);
            for (i, o) in buf.iter_mut().enumerate() {
                let pxy = px.get(i).copied().unwrap_or(0) ^ p.get(i).copied().unwrap_or(0);
                let qxy = qx.get(i).copied().unwrap_or(0) ^ q.get(i).copied().unwrap_or(0);
                *o = gf_mul(inv, qxy ^ gf_mul(gy, pxy));
            }
            Ok(())
        }
        _ => Err(io::Error::new(
            first_err.kind(),
            format!("raid6: more than two chunks of the row are unreadable: {first_err}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gf_basics() {
        // 2^8 = 0x1d under 0x11d; inverses multiply to 1.
        assert_eq!(gf_pow2(8), 0x1d);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1);
        }
    }

    /// The 5-disk tables in md's `raid5_compute_sector` comments: zr's first row
    /// is P Q D D D, nr's is D D D P Q, nc's continues left-symmetric with Q
    /// before P.
    #[test]
    fn first_rows_follow_the_kernel_comments() {
        let r = Raid6Layout::ZeroRestart.row(0, 5).unwrap();
        assert_eq!((r.p, r.q, r.data.clone()), (0, 1, vec![2, 3, 4]));
        let r = Raid6Layout::ZeroRestart.row(4, 5).unwrap();
        assert_eq!((r.p, r.q, r.data.clone()), (4, 0, vec![1, 2, 3]));
        let r = Raid6Layout::NRestart.row(0, 5).unwrap();
        assert_eq!((r.p, r.q, r.data.clone()), (3, 4, vec![0, 1, 2]));
        let r = Raid6Layout::NContinue.row(0, 5).unwrap();
        assert_eq!((r.p, r.q, r.data.clone()), (4, 3, vec![0, 1, 2]));
        let r = Raid6Layout::ParityN.row(7, 5).unwrap();
        assert_eq!((r.p, r.q, r.slot.clone()), (3, 4, vec![0, 1, 2]));
        assert!(Raid6Layout::ParityN.row(0, 2).is_none());
    }
}
