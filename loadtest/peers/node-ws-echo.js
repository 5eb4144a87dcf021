#!/usr/bin/env node
// Echo server on Node's `ws` (no compression), for loadtest/compare.sh.
// Usage: node node-ws-echo.js [--listen 127.0.0.1:9001]
'use strict';
const { WebSocketServer } = require('ws');

const i = process.argv.indexOf('--listen');
const listen = i >= 0 ? process.argv[i + 1] : '127.0.0.1:9001';
const colon = listen.lastIndexOf(':');
const host = listen.slice(0, colon);
const port = parseInt(listen.slice(colon + 1), 10);

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 64 << 20 }, () =>
  console.log(`listening on ws://${host}:${wss.address().port}`));

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
