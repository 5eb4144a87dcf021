//! Echo server on fastwebsockets with hyper's upgrade, single-threaded: the crate's own
//! echo example.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

async fn echo(upgrading: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    // Reassembles fragmented messages; pongs and close replies are automatic.
    let mut ws = FragmentCollector::new(upgrading.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgrading) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let _ = echo(upgrading).await;
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let addr = wsloop_peers::listen_addr();
    wsloop_peers::runtime().block_on(async {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on ws://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = http1::Builder::new()
                    .serve_connection(io, service_fn(upgrade))
                    .with_upgrades()
                    .await;
            });
        }
    })
}
