//! Opening LVs that are not plain segment maps: thin LVs (through their pool),
//! classic snapshots (through their COW store), and thin pools for `info`.

use crate::error::Error;
use crate::lv::LogicalVolume;
use crate::model::{LvRole, SegMap, MAX_STACK};
use crate::snapshot::SnapshotVolume;
use crate::thin::{ThinDeviceDetails, ThinPool};
use crate::vg::VolumeGroup;
use bytesource::SharedSource;
use std::sync::Arc;

impl VolumeGroup {
    fn lv_err(&self, idx: usize, reason: String) -> Error {
        Error::Lv {
            vg: self.inner.name.clone(),
            lv: self.lv_name(idx),
            reason,
        }
    }

    fn lv_name(&self, idx: usize) -> String {
        self.inner
            .lvs
            .get(idx)
            .map(|l| l.name.clone())
            .unwrap_or_default()
    }

    /// The only segment's map of LV `idx`, when it has exactly one.
    fn single_map(&self, idx: usize) -> Option<&SegMap> {
        match self.inner.lv_segs.get(idx).map(Vec::as_slice) {
            Some([one]) => Some(&one.map),
            _ => None,
        }
    }

    /// Opens LV `idx`, `depth` levels below the LV the caller asked for.
    pub(crate) fn open_idx(&self, idx: usize, depth: u32) -> Result<LogicalVolume, Error> {
        self.check_blocker(idx)?;
        if depth > MAX_STACK {
            return Err(self.lv_err(idx, "LVs are stacked too deep".to_string()));
        }
        // A snapshot's COW LV reads as the snapshot it stores.
        let snap = self.inner.snap_of.get(idx).copied().flatten();
        let plain = || LogicalVolume::new(self.inner.clone(), idx);
        match (snap, self.single_map(idx)) {
            (Some(s), _) => self.open_snapshot(idx, s, depth),
            (None, Some(SegMap::Snapshot { cow, .. })) => {
                let cow = *cow;
                self.open_snapshot(cow, idx, depth)
            }
            (
                None,
                Some(SegMap::Thin {
                    pool,
                    device_id,
                    external_origin,
                }),
            ) => {
                let (pool, id, ext) = (*pool, *device_id, *external_origin);
                let pool = self.thin_pool_idx(pool, depth)?;
                let ext: Option<SharedSource> = match ext {
                    Some(e) => Some(Arc::new(self.open_idx(e, depth.saturating_add(1))?)),
                    None => None,
                };
                let size = self.inner.lvs.get(idx).map(|l| l.size).unwrap_or(0);
                let v = pool.open_thin(id, size, ext)?;
                let mut warnings: Vec<String> = pool.warnings().to_vec();
                if pool.device(id)?.is_none() {
                    warnings.push(format!("thin device {id} has no device details"));
                }
                Ok(plain().with_source(Arc::new(v), size, warnings))
            }
            _ => Ok(plain()),
        }
    }

    /// Opens snapshot `snap_lv` (the LV holding the `snapshot` segment) whose COW
    /// LV is `cow_lv`.
    fn open_snapshot(
        &self,
        cow_lv: usize,
        snap_lv: usize,
        depth: u32,
    ) -> Result<LogicalVolume, Error> {
        let Some(SegMap::Snapshot { origin, chunk, .. }) = self.single_map(snap_lv) else {
            return Err(self.lv_err(cow_lv, "snapshot segment not found".to_string()));
        };
        let (origin, chunk) = (*origin, *chunk);
        let origin_src: SharedSource = Arc::new(self.open_idx(origin, depth.saturating_add(1))?);
        // The COW LV's own bytes: its segments, not the snapshot view.
        self.check_blocker(cow_lv)?;
        let cow: SharedSource = Arc::new(LogicalVolume::new(self.inner.clone(), cow_lv));
        let size = self.inner.lvs.get(snap_lv).map(|l| l.size).unwrap_or(0);
        let name = format!("{}/{}", self.inner.name, self.lv_name(cow_lv));
        let (v, warnings) = SnapshotVolume::open(&name, origin_src, cow, size, chunk)?;
        Ok(LogicalVolume::new(self.inner.clone(), cow_lv).with_source(Arc::new(v), size, warnings))
    }

    /// Opens thin pool LV `name`: its superblock (read once per VG), counts,
    /// devices. Errors when `name` is not a thin pool or its metadata is damaged.
    pub fn thin_pool(&self, name: &str) -> Result<Arc<ThinPool>, Error> {
        let idx = self.lv_index(name)?;
        self.thin_pool_idx(idx, 0)
    }

    /// The pool details of thin LV `name`'s device (mapped blocks, transaction).
    pub fn thin_device_details(&self, name: &str) -> Result<Option<ThinDeviceDetails>, Error> {
        let idx = self.lv_index(name)?;
        match self.inner.lvs.get(idx).map(|l| &l.role) {
            Some(LvRole::Thin {
                pool, device_id, ..
            }) => self.thin_pool(pool)?.device(*device_id),
            _ => Err(self.lv_err(idx, "not a thin LV".to_string())),
        }
    }

    fn thin_pool_idx(&self, idx: usize, depth: u32) -> Result<Arc<ThinPool>, Error> {
        if let Some(p) = self.pools.lock().ok().and_then(|m| m.get(&idx).cloned()) {
            return Ok(p);
        }
        let Some(SegMap::ThinPool { meta, data, chunk }) = self.single_map(idx) else {
            return Err(self.lv_err(idx, "not a thin pool".to_string()));
        };
        let (meta, data, chunk) = (*meta, *data, *chunk);
        let name = format!("{}/{}", self.inner.name, self.lv_name(idx));
        let meta_src: SharedSource = Arc::new(self.open_idx(meta, depth.saturating_add(1))?);
        let data_src: SharedSource = Arc::new(self.open_idx(data, depth.saturating_add(1))?);
        let mut pool = ThinPool::open_named(&name, meta_src, data_src)?;
        let sb_bytes = pool.data_block_bytes();
        if chunk != sb_bytes {
            pool.push_warning(format!(
                "{name}: chunk_size {chunk} bytes in the VG text, data_block_size {sb_bytes} in \
                 the pool superblock; using the superblock's"
            ));
        }
        if let Some(LvRole::ThinPool { transaction_id, .. }) =
            self.inner.lvs.get(idx).map(|l| &l.role)
        {
            if *transaction_id != pool.transaction_id() {
                pool.push_warning(format!(
                    "{name}: transaction_id {transaction_id} in the VG text, {} in the pool \
                     metadata",
                    pool.transaction_id()
                ));
            }
        }
        let pool = Arc::new(pool);
        if let Ok(mut m) = self.pools.lock() {
            m.insert(idx, pool.clone());
        }
        Ok(pool)
    }
}
