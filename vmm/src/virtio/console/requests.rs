//! virtio-console queue handling (virtio 1.2 §5.3.6): port 0's receiveq (queue 0, host to
//! guest) and transmitq (queue 1, guest to host).

use super::Console;
use super::backend::{ConsoleBackend, ConsoleInput};
use crate::memory::GuestMemory;
use crate::virtio::{DeviceError, Queues};

/// Queue index of port 0's receiveq.
pub const RECEIVEQ: usize = 0;
/// Queue index of port 0's transmitq.
pub const TRANSMITQ: usize = 1;

/// Most bytes read from the backend at a time.
const INPUT_CHUNK: usize = 4096;
/// Most bytes taken from one transmit chain (the guest's buffers are at most a page).
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Sends every transmit chain's bytes to the backend.
pub(super) fn transmit<B: ConsoleBackend, M: GuestMemory>(
    dev: &mut Console<B>,
    queues: &mut Queues<'_, M>,
) -> Result<(), DeviceError> {
    while let Some(chain) = queues.pop(TRANSMITQ)? {
        let data = chain.read_all(queues.mem(), OUTPUT_LIMIT)?;
        dev.backend.write_output(&data);
        queues.add_used(TRANSMITQ, &chain, 0)?;
    }
    Ok(())
}

/// Moves pending input into receive buffers, reading more from the backend only while the
/// guest has buffers to put it in. After the backend says input is closed it is never asked
/// again, so end of input costs nothing and does not stop output.
pub(super) fn receive<B: ConsoleBackend, M: GuestMemory>(
    dev: &mut Console<B>,
    queues: &mut Queues<'_, M>,
) -> Result<(), DeviceError> {
    loop {
        if dev.pending.is_empty() && !dev.input_closed {
            let mut buf = [0u8; INPUT_CHUNK];
            match dev.backend.read_input(&mut buf) {
                ConsoleInput::Data(n) => dev.pending.extend(&buf[..n.min(INPUT_CHUNK)]),
                ConsoleInput::Empty => {}
                ConsoleInput::Closed => {
                    log::info!("virtio-console: end of input");
                    dev.input_closed = true;
                }
            }
        }
        if dev.pending.is_empty() {
            return Ok(());
        }
        let Some(chain) = queues.pop(RECEIVEQ)? else {
            return Ok(());
        };
        let room = chain.writable_len().min(dev.pending.len() as u64) as usize;
        let data: alloc::vec::Vec<u8> = dev.pending.drain(..room).collect();
        let n = chain.write_at(queues.mem(), 0, &data)?;
        queues.add_used(RECEIVEQ, &chain, n as u32)?;
    }
}
