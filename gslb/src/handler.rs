//! The request path: bytes in, bytes out. [`GslbHandler`] is a hickory-server
//! [`RequestHandler`] (TCP goes through hickory's `Server`: connection handling, pipelining,
//! idle timeouts) and also answers raw UDP datagrams itself ([`GslbHandler::answer_datagram`]),
//! which the UDP loops call directly: no task or channel per query, and garbage is dropped
//! before hickory would answer it. A datagram first tries the allocation-free fast path
//! (`fast.rs`), which answers the common A/AAAA query exactly as hickory would, and falls back
//! to hickory for everything else.

use std::iter::{self, Empty};
use std::net::SocketAddr;
use std::slice::Iter;
use std::sync::Arc;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{
    MessageRequest, MessageResponse, MessageResponseBuilder, Queries,
};

use crate::answer::{Reply, SharedGslb, UDP_PAYLOAD};
use crate::metrics::GslbMetrics;

/// Smallest DNS message: the 12-byte header.
const HEADER_LEN: usize = 12;

/// Answers DNS requests from the current [`Gslb`](crate::Gslb).
#[derive(Clone)]
pub struct GslbHandler {
    pub(crate) state: SharedGslb,
    pub(crate) metrics: Arc<GslbMetrics>,
}

type Response<'q> = MessageResponse<
    'q,
    'q,
    Iter<'q, Record>,
    Iter<'q, Record>,
    Empty<&'q Record>,
    Empty<&'q Record>,
>;

fn response<'q>(request: &'q MessageRequest, reply: &'q Reply) -> Response<'q> {
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = &reply.edns {
        builder.edns(edns);
    }
    builder.build(
        reply.metadata,
        reply.answers.iter(),
        reply.authorities.iter(),
        iter::empty(),
        iter::empty(),
    )
}

/// The UDP size limit for a response to `request`: the client's EDNS payload size, capped by
/// ours; 512 without EDNS (RFC 1035).
fn udp_limit(request: &MessageRequest) -> u16 {
    match &request.edns {
        Some(_) => request.max_payload().min(UDP_PAYLOAD),
        None => 512,
    }
}

/// Writes a bare SERVFAIL for `id` (when a response cannot be encoded).
fn servfail(id: u16, out: &mut Vec<u8>) {
    out.clear();
    let mut metadata = Metadata::new(id, MessageType::Response, hickory_proto::op::OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut encoder = BinEncoder::new(out);
    let _ = header.emit(&mut encoder);
}

impl GslbHandler {
    /// A handler answering from `state`, counting in `metrics`.
    pub fn new(state: SharedGslb, metrics: Arc<GslbMetrics>) -> Self {
        GslbHandler { state, metrics }
    }

    /// A handler for `config` with every edge healthy and no health checks running: for
    /// fuzzing and benchmarking the request path without sockets.
    pub fn from_config(config: &cdn_config::GslbConfig) -> Result<Self, String> {
        let metrics = Arc::new(GslbMetrics::new());
        let gslb = crate::Gslb::build(config, &metrics, None)?;
        Ok(GslbHandler::new(
            Arc::new(arc_swap::ArcSwap::from_pointee(gslb)),
            metrics,
        ))
    }

    /// Answers one UDP datagram from `source` into `out`. Returns `false` when nothing is to be
    /// sent: the datagram is not a DNS query (shorter than a header, a response, or bytes
    /// that do not decode and have no readable question).
    pub fn answer_datagram(&self, datagram: &[u8], source: SocketAddr, out: &mut Vec<u8>) -> bool {
        if datagram.len() < HEADER_LEN || source.port() == 0 {
            self.metrics.dropped();
            return false;
        }
        let state = self.state.load();
        if crate::fast::answer(&state, datagram, source, &self.metrics, out) {
            return true;
        }
        self.answer_with_hickory(&state, datagram, source, out)
    }

    /// [`answer_datagram`](Self::answer_datagram) without the fast path: hickory decodes the
    /// query and encodes the response.
    fn answer_with_hickory(
        &self,
        state: &crate::Gslb,
        datagram: &[u8],
        source: SocketAddr,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut decoder = BinDecoder::new(datagram);
        let header = match Header::read(&mut decoder) {
            // Never answer a response: that is how reflection loops start.
            Ok(h) if h.metadata.message_type == MessageType::Query => h,
            _ => {
                self.metrics.dropped();
                return false;
            }
        };
        let request = match Request::from_bytes(datagram.to_vec(), source, Protocol::Udp) {
            Ok(request) => request,
            Err(_) => return self.malformed(&header, &mut decoder, out),
        };
        let reply = state.reply(&request, source.ip(), &self.metrics);
        out.clear();
        let mut encoder = BinEncoder::new(out);
        encoder.set_max_size(udp_limit(&request));
        if response(&request, &reply)
            .destructive_emit(&mut encoder)
            .is_err()
        {
            servfail(header.metadata.id, out);
        }
        true
    }

    /// [`answer_datagram`](Self::answer_datagram) with the fast path skipped (tests compare
    /// the two).
    #[cfg(test)]
    pub(crate) fn answer_datagram_with_hickory_only(
        &self,
        datagram: &[u8],
        source: SocketAddr,
        out: &mut Vec<u8>,
    ) -> bool {
        if datagram.len() < HEADER_LEN || source.port() == 0 {
            self.metrics.dropped();
            return false;
        }
        self.answer_with_hickory(&self.state.load(), datagram, source, out)
    }

    /// A query whose body does not decode: FORMERR if it has one readable question (it is a
    /// DNS query, just a broken one), else dropped as garbage.
    fn malformed(&self, header: &Header, decoder: &mut BinDecoder<'_>, out: &mut Vec<u8>) -> bool {
        let queries = match Queries::read(decoder, usize::from(header.counts.queries)) {
            Ok(q) if q.len() == 1 => q,
            _ => {
                self.metrics.dropped();
                return false;
            }
        };
        let qtype = queries
            .queries()
            .first()
            .map_or(RecordType::Unknown(0), |q| q.query_type());
        self.metrics.query(qtype, ResponseCode::FormErr);
        out.clear();
        let mut encoder = BinEncoder::new(out);
        encoder.set_max_size(512);
        let message = MessageResponseBuilder::new(&queries, None)
            .error_msg(&header.metadata, ResponseCode::FormErr);
        if message.destructive_emit(&mut encoder).is_err() {
            servfail(header.metadata.id, out);
        }
        true
    }
}

#[async_trait::async_trait]
impl RequestHandler for GslbHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = self
            .state
            .load()
            .reply(request, request.src().ip(), &self.metrics);
        let metadata = reply.metadata;
        match response_handle
            .send_response(response(request, &reply))
            .await
        {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "cannot send a DNS response");
                let mut failed = metadata;
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
