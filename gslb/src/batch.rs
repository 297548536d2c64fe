//! Batched UDP I/O on Linux: up to [`BATCH`] queries read with one `recvmmsg` and their answers
//! sent with one `sendmmsg`.
//!
//! Why: once a query is answered without allocation (see [`crate::fast`]), most of the gslb's
//! time goes to the kernel, a `recvfrom` and a `sendto` per query plus a wake-up whenever the
//! socket runs dry. Under load, batches amortise the syscalls as Knot and NSD do. Under light
//! load a batch holds one datagram and this is the plain loop.
//!
//! This is the crate's only `unsafe` code: the two syscalls and reading the kernel-filled
//! source addresses. Every pointer handed to the kernel points into [`Batch`]'s own buffers,
//! which outlive the call and are not otherwise touched while it runs.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::handler::GslbHandler;

/// Datagrams per syscall: enough to amortise it, small enough to keep latency flat.
const BATCH: usize = 32;

/// The buffers of one socket's loop, reused for every batch.
struct Batch {
    /// One receive buffer per slot.
    buffers: Vec<Vec<u8>>,
    /// Source address of each received datagram (then the destination of its answer).
    addresses: Vec<libc::sockaddr_storage>,
    /// Length the kernel wrote into each address.
    address_lengths: Vec<libc::socklen_t>,
    /// Length of each received datagram.
    lengths: Vec<usize>,
    /// The answer to each slot's datagram.
    answers: Vec<Vec<u8>>,
    /// The slots that have an answer to send, in order.
    outgoing: Vec<usize>,
}

impl Batch {
    fn new(read_size: usize, answer_capacity: usize) -> Self {
        // SAFETY: all-zero bytes are a valid `sockaddr_storage` (a C struct of integers).
        let zero: libc::sockaddr_storage = unsafe { mem::zeroed() };
        Batch {
            buffers: (0..BATCH).map(|_| vec![0u8; read_size]).collect(),
            addresses: vec![zero; BATCH],
            address_lengths: vec![0; BATCH],
            lengths: vec![0; BATCH],
            answers: (0..BATCH)
                .map(|_| Vec::with_capacity(answer_capacity))
                .collect(),
            outgoing: Vec::with_capacity(BATCH),
        }
    }

    /// One non-blocking `recvmmsg`: the number of datagrams read (at least 1), or an error
    /// (`WouldBlock` when the socket is empty).
    fn receive(&mut self, fd: libc::c_int) -> io::Result<usize> {
        let mut iovecs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: all-zero bytes are a valid `mmsghdr` (null pointers, zero lengths).
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (i, ((iovec, header), buffer)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(self.buffers.iter_mut())
            .enumerate()
        {
            iovec.iov_base = buffer.as_mut_ptr().cast();
            iovec.iov_len = buffer.len();
            header.msg_hdr.msg_name =
                (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen =
                mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers` describes BATCH messages whose name and data pointers point into
        // `self.addresses` and `self.buffers` with their true sizes; all live across the call.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        let received = usize::try_from(received).unwrap_or(0).min(BATCH);
        for (i, header) in headers.iter().enumerate().take(received) {
            self.lengths[i] = (header.msg_len as usize).min(self.buffers[i].len());
            self.address_lengths[i] = header.msg_hdr.msg_namelen;
        }
        Ok(received)
    }

    /// One non-blocking `sendmmsg` of `self.outgoing[from..]`: how many were sent (at least 1).
    fn send(&mut self, fd: libc::c_int, from: usize) -> io::Result<usize> {
        let pending = self.outgoing.get(from..).unwrap_or_default();
        let mut iovecs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: all-zero bytes are a valid `mmsghdr`.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for ((iovec, header), &slot) in iovecs.iter_mut().zip(headers.iter_mut()).zip(pending) {
            let bytes = &self.answers[slot];
            // The kernel only reads through this pointer (sendmmsg).
            iovec.iov_base = bytes.as_ptr().cast_mut().cast();
            iovec.iov_len = bytes.len();
            header.msg_hdr.msg_name =
                (&mut self.addresses[slot] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = self.address_lengths[slot];
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        let count = pending.len().min(BATCH);
        // SAFETY: the first `count` headers point into `self.answers` and `self.addresses`,
        // which live across the call and are only read by the kernel.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(sent).unwrap_or(0))
    }

    /// The source of datagram `slot`, if it is an IPv4 or IPv6 address.
    fn source(&self, slot: usize) -> Option<SocketAddr> {
        let storage = self.addresses.get(slot)?;
        let length = usize::try_from(*self.address_lengths.get(slot)?).ok()?;
        match i32::from(storage.ss_family) {
            libc::AF_INET if length >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a `sockaddr_in` (family AF_INET, long enough);
                // `sockaddr_storage` is sized and aligned for every socket address type.
                let a = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if length >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a `sockaddr_in6`.
                let a = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// One UDP socket's loop with batched syscalls: read what is queued (up to [`BATCH`]), answer
/// each in turn, send the answers together.
pub(crate) async fn serve_udp(
    socket: UdpSocket,
    handler: GslbHandler,
    read_size: usize,
    answer_capacity: usize,
) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new(read_size, answer_capacity);
    loop {
        let received = match socket
            .async_io(Interest::READABLE, || batch.receive(fd))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux: not fatal.
                tracing::debug!("gslb udp receive: {e}");
                continue;
            }
        };
        batch.outgoing.clear();
        for slot in 0..received {
            let Some(source) = batch.source(slot) else {
                continue;
            };
            let datagram = batch
                .buffers
                .get(slot)
                .and_then(|b| b.get(..batch.lengths[slot]))
                .unwrap_or_default();
            let Some(out) = batch.answers.get_mut(slot) else {
                continue;
            };
            if handler.answer_datagram(datagram, source, out) {
                batch.outgoing.push(slot);
            }
        }
        let mut from = 0;
        while from < batch.outgoing.len() {
            match socket
                .async_io(Interest::WRITABLE, || batch.send(fd, from))
                .await
            {
                Ok(sent) => from += sent.max(1),
                Err(e) => {
                    // The first pending answer failed (say, an unreachable client): skip it.
                    tracing::debug!("gslb udp send: {e}");
                    from += 1;
                }
            }
        }
    }
}
