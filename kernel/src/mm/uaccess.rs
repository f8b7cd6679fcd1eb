//! Checked access to user memory. Every pointer a system call receives is turned into a
//! `UserSlice` (range checked against the user half) before it is touched, and the copy itself
//! survives faults: a page that cannot be made present ends the copy with `EBADADDR` through
//! the exception-fixup table, never with a kernel fault.

use abi::errors::EBADADDR;
use abi::sys::layout::USER_END;
use alloc::string::String;
use alloc::vec::Vec;

// Eight bytes at a time, then the tail: `rep movsb` alone is as fast on CPUs with ERMS, but
// emulators (QEMU TCG, Bochs) pay per iteration, which made it the bottleneck of every pipe and
// 9P transfer there. Either `rep` may fault on either operand; its fixup returns the bytes left.
core::arch::global_asm!(
    r#"
    .text
    .global copy_user_bytes
copy_user_bytes:                /* (dst: rdi, src: rsi, len: rdx) -> bytes not copied */
    mov rcx, rdx
    shr rcx, 3
    and edx, 7
copy_user_qwords:
    rep movsq
    mov rcx, rdx
copy_user_tail:
    rep movsb
copy_user_tail_done:
    mov rax, rcx
    ret
copy_user_qwords_fault:         /* qwords left in rcx, the tail not started */
    lea rax, [rdx + rcx * 8]
    ret
    .section .ex_table, "a"
    .balign 8
    .quad copy_user_qwords, copy_user_qwords_fault
    .quad copy_user_tail, copy_user_tail_done
    .text
"#
);

unsafe extern "C" {
    fn copy_user_bytes(dst: *mut u8, src: *const u8, len: usize) -> usize;
}

/// A range of user memory, checked to lie in the user half.
#[derive(Clone, Copy, Debug)]
pub struct UserSlice {
    addr: u64,
    len: usize,
}

impl UserSlice {
    /// Checks `[addr, addr + len)`: it must not wrap and must end below `USER_END`. A zero
    /// length is accepted at any address.
    pub fn new(addr: u64, len: u64) -> Result<UserSlice, &'static str> {
        let end = addr.checked_add(len).ok_or(EBADADDR)?;
        if len != 0 && (addr < 4096 || end > USER_END) {
            return Err(EBADADDR);
        }
        Ok(UserSlice {
            addr,
            len: usize::try_from(len).map_err(|_| EBADADDR)?,
        })
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The part starting `offset` bytes in, `len` long (clamped).
    pub fn sub(&self, offset: usize, len: usize) -> UserSlice {
        let offset = offset.min(self.len);
        UserSlice {
            addr: self.addr + offset as u64,
            len: len.min(self.len - offset),
        }
    }

    /// Copies the user bytes into `dst` (which must be exactly as long).
    pub fn read(&self, dst: &mut [u8]) -> Result<(), &'static str> {
        debug_assert_eq!(dst.len(), self.len);
        // SAFETY: `dst` is kernel memory of the right length; the source range was checked to be
        // in the user half, and faults on it end the copy through the fixup table.
        let left = unsafe { copy_user_bytes(dst.as_mut_ptr(), self.addr as *const u8, self.len) };
        if left == 0 { Ok(()) } else { Err(EBADADDR) }
    }

    /// Copies `src` (exactly as long) into the user bytes.
    pub fn write(&self, src: &[u8]) -> Result<(), &'static str> {
        debug_assert_eq!(src.len(), self.len);
        // SAFETY: As in `read`, with the roles swapped.
        let left = unsafe { copy_user_bytes(self.addr as *mut u8, src.as_ptr(), self.len) };
        if left == 0 { Ok(()) } else { Err(EBADADDR) }
    }

    /// The user bytes, copied into a new vector.
    pub fn to_vec(self) -> Result<Vec<u8>, &'static str> {
        let mut v = alloc::vec![0; self.len];
        self.read(&mut v)?;
        Ok(v)
    }

    /// The user bytes as a UTF-8 string of at most `max` bytes.
    pub fn to_string(self, max: usize, too_long: &'static str) -> Result<String, &'static str> {
        if self.len > max {
            return Err(too_long);
        }
        String::from_utf8(self.to_vec()?).map_err(|_| abi::errors::EBADARG)
    }
}

/// Plain data that may be copied to and from user memory byte for byte.
///
/// # Safety
/// Every bit pattern must be a valid value, and the type must have no padding that could leak
/// kernel memory.
pub unsafe trait Pod: Copy + Default {}

// SAFETY: Integers and these #[repr(C)] structs of u64 fields have no padding and no invalid
// bit patterns.
unsafe impl Pod for u64 {}
// SAFETY: As above.
unsafe impl Pod for abi::sys::StrRef {}
// SAFETY: As above: u64 fields and a byte array whose length is a multiple of 8.
unsafe impl Pod for abi::sys::WaitMsg {}
// SAFETY: As above.
unsafe impl Pod for abi::sys::Ureg {}
// SAFETY: As above.
unsafe impl Pod for [u64; 2] {}

/// Reads one `T` from user address `addr`.
pub fn read_value<T: Pod>(addr: u64) -> Result<T, &'static str> {
    let mut value = T::default();
    let slice = UserSlice::new(addr, core::mem::size_of::<T>() as u64)?;
    // SAFETY: `T: Pod`, so any bytes form a valid T; the slice covers exactly its size.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut((&raw mut value).cast::<u8>(), core::mem::size_of::<T>())
    };
    slice.read(bytes)?;
    Ok(value)
}

/// Writes one `T` to user address `addr`.
pub fn write_value<T: Pod>(addr: u64, value: &T) -> Result<(), &'static str> {
    let slice = UserSlice::new(addr, core::mem::size_of::<T>() as u64)?;
    // SAFETY: `T: Pod` has no padding, so its bytes are all initialised.
    let bytes = unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    };
    slice.write(bytes)
}
