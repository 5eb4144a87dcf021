#!/usr/bin/env node
// wss:// interop: Node's `ws` client (over Node's own TLS, OpenSSL) against a wsloop echo
// server, trusting only the test CA. Run by tests/tls_interop.rs with NODE_PATH pointing at a
// node_modules that holds `ws`.
//
// Usage: wss_node.js echo URL SERVERNAME CA_FILE
//        wss_node.js untrusted URL SERVERNAME
//
// `echo`: connects with the CA as the only trust anchor (verification stays on), checks the
// TLS session (authorized, ALPN http/1.1, SNI name), sends a text and a 100 KiB binary
// message and compares the echoes byte for byte, then closes with 1000 and records the close
// code the server answered with.
// `untrusted`: the same connection without the CA; it must fail with a certificate error.
//
// Prints one JSON object on stdout: the facts it saw (`failures` lists what did not hold).
// Exits 0 only if every check held.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const WebSocket = require("ws");

const [mode, url, servername, caFile] = process.argv.slice(2);
const result = { mode, url, ws_version: require("ws/package.json").version, failures: [] };
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(result.failures.length === 0 ? 0 : 1);
}

function fail(what) {
  result.failures.push(what);
}

// A server that never answers fails the run instead of hanging it.
setTimeout(() => {
  fail("timed out after 10 s");
  finish();
}, 10_000).unref();

const options = {
  // Verification stays on: only the CA given (or, for `untrusted`, the system store) is
  // trusted.
  rejectUnauthorized: true,
  servername,
  ALPNProtocols: ["http/1.1"],
  perMessageDeflate: false,
  maxPayload: 1 << 20,
};
if (mode === "echo") {
  options.ca = fs.readFileSync(caFile);
} else if (mode !== "untrusted") {
  fail(`unknown mode ${mode}`);
  finish();
}

const ws = new WebSocket(url, options);
ws.binaryType = "nodebuffer";

if (mode === "untrusted") {
  ws.on("open", () => {
    fail("connected without trusting the CA");
    ws.terminate();
    finish();
  });
  ws.on("error", (err) => {
    result.error_code = err.code || null;
    result.error_message = err.message;
    finish();
  });
} else {
  runEcho();
}

function runEcho() {
  const text = "hello over wss from Node ws · é ✓ " + "x".repeat(1000);
  // 100 KiB, random, so a byte out of place anywhere shows.
  const binary = crypto.randomBytes(100 * 1024);
  const steps = [];

  ws.on("error", (err) => {
    result.error_code = err.code || null;
    result.error_message = err.message;
    fail(`error: ${err.message}`);
    finish();
  });

  ws.on("open", () => {
    const socket = ws._socket;
    result.authorized = socket.authorized === true;
    result.authorization_error = socket.authorizationError || null;
    result.alpn = socket.alpnProtocol || null;
    result.servername = socket.servername || null;
    result.tls_version = socket.getProtocol();
    const peer = socket.getPeerCertificate();
    result.peer_subject_cn = peer && peer.subject ? peer.subject.CN : null;
    result.peer_issuer_cn = peer && peer.issuer ? peer.issuer.CN : null;
    result.ws_protocol_url = ws.url;
    if (!result.authorized) fail(`not authorized: ${result.authorization_error}`);
    if (result.alpn !== "http/1.1") fail(`ALPN ${result.alpn}`);
    ws.send(text);
  });

  ws.on("message", (data, isBinary) => {
    steps.push(isBinary);
    if (steps.length === 1) {
      result.text_echo_binary_flag = isBinary;
      result.text_echo_equal = !isBinary && data.toString("utf8") === text;
      result.text_bytes = Buffer.byteLength(text);
      if (!result.text_echo_equal) fail("text echo differs");
      ws.send(binary, { binary: true });
    } else if (steps.length === 2) {
      result.binary_echo_binary_flag = isBinary;
      result.binary_bytes_sent = binary.length;
      result.binary_bytes_echoed = data.length;
      result.binary_echo_equal = isBinary && Buffer.isBuffer(data) && data.equals(binary);
      if (!result.binary_echo_equal) fail("binary echo differs");
      ws.close(1000, "done");
    } else {
      fail("more messages than were sent");
    }
  });

  ws.on("close", (code, reason) => {
    result.close_code = code;
    result.close_reason = reason.toString("utf8");
    result.messages_echoed = steps.length;
    if (code !== 1000) fail(`close code ${code}`);
    if (steps.length !== 2) fail(`${steps.length} echoes`);
    finish();
  });
}
