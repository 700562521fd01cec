//! The flat global memory of a simulated device.
//!
//! Allocations are placed one after another from [`BASE`] (above 4 GiB, so an
//! address truncated to 32 bits never lands in one), each 256-aligned and
//! separated from the previous by at least [`GAP`] unmapped bytes, so an
//! overrun of one allocation faults instead of reading the next. One byte
//! vector backs all of them (gaps included); an access is valid only when it
//! lies entirely inside one allocation.

use crate::error::Space;

/// Address of the first allocation.
pub(crate) const BASE: u64 = 1 << 32;
/// Minimum unmapped bytes between two allocations.
pub(crate) const GAP: u64 = 256;
/// Alignment of every allocation.
pub(crate) const ALIGN: u64 = 256;

/// Why an instruction could not complete (the executor adds where it happened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    OutOfBounds { space: Space, addr: u64, size: u64 },
    Misaligned { space: Space, addr: u64, size: u64 },
    DivisionByZero,
    Budget,
}

/// Global memory: allocations and their bytes.
#[derive(Default)]
pub(crate) struct Global {
    /// `bytes[i]` is the byte at address `BASE + i`.
    bytes: Vec<u8>,
    /// `[start, end)` of each allocation, in increasing address order.
    allocs: Vec<(u64, u64)>,
    /// Index of the allocation the last device access hit (a lookup cache).
    last: usize,
}

impl std::fmt::Debug for Global {
    /// The allocations, not their (possibly large) contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("allocations", &self.allocs.len())
            .field("mapped_bytes", &self.bytes.len())
            .finish()
    }
}

impl Global {
    /// A new zeroed allocation of `n` bytes; returns its address.
    pub(crate) fn alloc(&mut self, n: usize) -> u64 {
        let start = match self.allocs.last() {
            Some(&(_, end)) => (end + GAP).next_multiple_of(ALIGN),
            None => BASE,
        };
        let end = start + n as u64;
        self.bytes.resize((end - BASE) as usize, 0);
        self.allocs.push((start, end));
        start
    }

    /// Index of the allocation holding all of `[addr, addr + len)`.
    fn find(&self, addr: u64, len: u64) -> Option<usize> {
        let i = self.allocs.partition_point(|a| a.0 <= addr).checked_sub(1)?;
        let (_, end) = self.allocs[i];
        (addr <= end.saturating_sub(len) && end >= len).then_some(i)
    }

    /// The byte range of `[addr, addr + len)` in the backing vector, if it lies inside one allocation.
    fn host_range(&self, addr: u64, len: usize) -> Option<std::ops::Range<usize>> {
        self.find(addr, len as u64)?;
        let o = (addr - BASE) as usize;
        Some(o..o + len)
    }

    /// Host read; `None` unless inside one allocation.
    pub(crate) fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.host_range(addr, len).map(|r| &self.bytes[r])
    }

    /// Host write; `None` unless inside one allocation.
    pub(crate) fn write(&mut self, addr: u64, data: &[u8]) -> Option<()> {
        let r = self.host_range(addr, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Some(())
    }

    /// Offset in `bytes` of an aligned device access of `size` bytes (a power of two).
    #[inline]
    fn offset(&mut self, addr: u64, size: u64) -> Result<usize, Fault> {
        if addr & (size - 1) != 0 {
            return Err(Fault::Misaligned {
                space: Space::Global,
                addr,
                size,
            });
        }
        let hit = self
            .allocs
            .get(self.last)
            .is_some_and(|&(start, end)| addr >= start && addr <= end.saturating_sub(size) && end >= size);
        if !hit {
            self.last = self.find(addr, size).ok_or(Fault::OutOfBounds {
                space: Space::Global,
                addr,
                size,
            })?;
        }
        Ok((addr - BASE) as usize)
    }

    /// Device load of `N` bytes at `addr` (must be `N`-aligned, inside one allocation).
    #[inline]
    pub(crate) fn load<const N: usize>(&mut self, addr: u64) -> Result<[u8; N], Fault> {
        let o = self.offset(addr, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[o..o + N]);
        Ok(out)
    }

    /// Device store of `N` bytes at `addr` (must be `N`-aligned, inside one allocation).
    #[inline]
    pub(crate) fn store<const N: usize>(&mut self, addr: u64, v: [u8; N]) -> Result<(), Fault> {
        let o = self.offset(addr, N as u64)?;
        self.bytes[o..o + N].copy_from_slice(&v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_separated_and_bounded() {
        let mut g = Global::default();
        let a = g.alloc(10);
        let b = g.alloc(256);
        let c = g.alloc(0);
        assert_eq!(a % ALIGN, 0);
        assert!(b >= a + 10 + GAP && b % ALIGN == 0);
        assert!(c >= b + 256 + GAP);
        assert!(g.load::<4>(a + 8).is_err(), "straddles the end of a");
        assert_eq!(g.load::<4>(a + 4), Ok([0; 4]));
        assert_eq!(
            g.load::<4>(a + 2),
            Err(Fault::Misaligned {
                space: Space::Global,
                addr: a + 2,
                size: 4
            })
        );
        assert!(g.load::<1>(a + 10).is_err());
        assert!(g.load::<8>(b + 248).is_ok());
        assert!(g.load::<8>(b + 256).is_err());
        assert!(g.load::<1>(c).is_err(), "an empty allocation holds nothing");
        assert!(g.load::<4>(0).is_err());
        assert!(g.load::<4>(u64::MAX - 3).is_err());
        assert!(g.write(b + 250, &[1; 6]).is_some());
        assert!(g.write(b + 250, &[1; 7]).is_none());
        assert_eq!(g.read(b + 252, 4), Some(&[1u8, 1, 1, 1][..]));
        assert!(format!("{g:?}").contains("allocations: 3"));
    }
}
