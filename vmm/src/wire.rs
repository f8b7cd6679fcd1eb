//! Little-endian field access on byte buffers, for the packed structures of the boot protocol,
//! the MP specification, ELF and virtio. Reads return `None` past the end instead of panicking,
//! so parsers of untrusted images turn truncation into an error value.

/// The `N` bytes at `offset`, if the buffer holds them.
pub(crate) fn bytes<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    buf.get(offset..end)?.try_into().ok()
}

pub(crate) fn u8_at(buf: &[u8], offset: usize) -> Option<u8> {
    buf.get(offset).copied()
}

pub(crate) fn u16_at(buf: &[u8], offset: usize) -> Option<u16> {
    bytes(buf, offset).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(buf: &[u8], offset: usize) -> Option<u32> {
    bytes(buf, offset).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(buf: &[u8], offset: usize) -> Option<u64> {
    bytes(buf, offset).map(u64::from_le_bytes)
}

/// Writes `value` at `offset`. Callers write into buffers they sized for the structure, so an
/// out-of-range offset is a bug in this crate, not bad input.
pub(crate) fn put(buf: &mut [u8], offset: usize, value: &[u8]) {
    buf[offset..offset + value.len()].copy_from_slice(value);
}

pub(crate) fn put_u8(buf: &mut [u8], offset: usize, value: u8) {
    buf[offset] = value;
}

pub(crate) fn put_u16(buf: &mut [u8], offset: usize, value: u16) {
    put(buf, offset, &value.to_le_bytes());
}

pub(crate) fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    put(buf, offset, &value.to_le_bytes());
}

pub(crate) fn put_u64(buf: &mut [u8], offset: usize, value: u64) {
    put(buf, offset, &value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u32_at(&b, 0), Some(0x0403_0201));
        assert_eq!(u32_at(&b, 2), None);
        assert_eq!(u64_at(&b, usize::MAX - 2), None);
        assert_eq!(u8_at(&b, 5), None);
    }
}
