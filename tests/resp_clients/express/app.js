// The demo API of a sessionraft node on stock Express sessions: express-session with
// connect-redis over node-redis (package `redis`), sessions in whatever speaks Redis at
// REDIS_URL (a redis-server, or a sessionraft cluster's RESP door behind its load balancer).
//
//   POST /api/counter   increments `counter` in the session: {"counter": n, "served_by": 0}
//   GET  /api/counter   reads it (0 without a session):     {"counter": n, "served_by": 0}
//   POST /api/logout    destroys the session (DEL):           {"signed_out": true, "served_by": 0}
//   GET  /healthz       "ok" once the Redis client is connected
//
//   REDIS_URL=redis://127.0.0.1:7200 node app.js 127.0.0.1:8301   (or LISTEN_ADDR=...)
//   REDIS_URL=rediss://127.0.0.1:7200 REDIS_CA=certs/ca.crt [REDIS_CERT=app.crt REDIS_KEY=app.key] node app.js ...
//
// The cookie (`id`) is express-session's: HttpOnly, SameSite=Lax, signed with SESSION_SECRET
// (a development default otherwise), no Max-Age (a browser session; the store keeps it a day).
// A write is acknowledged only after the store acknowledged it: the handler saves the session
// itself before it answers, so a failed SET is a 503, never a 200 (express-session's implicit
// save at res.end would have sent the 200's headers before the store answered).
"use strict";

const fs = require("fs");
const express = require("express");
const session = require("express-session");
const { RedisStore } = require("connect-redis");
const { createClient } = require("redis");

const DEV_SECRET = "express-app-dev-secret-change-me-0123456789abcdef";

function listenAddress() {
  const addr = process.argv[2] || process.env.LISTEN_ADDR || "127.0.0.1:8301";
  const i = addr.lastIndexOf(":");
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`listen address must be HOST:PORT, got ${JSON.stringify(addr)}`);
  }
  return { host: addr.slice(0, i), port };
}

function counterOf(sess) {
  const n = Number(sess && sess.counter);
  return Number.isSafeInteger(n) ? n : 0;
}

// An error of the store (Redis unreachable, an error reply): the outcome of a write is unknown.
function storeFailed(res, what, err) {
  console.error(`express app: ${what}: ${err && err.message ? err.message : err}`);
  if (!res.headersSent) {
    res.status(503).set("Retry-After", "1").json({ error: `session store: ${what}` });
  }
}

// With a rediss:// URL: the CA to verify the server by (REDIS_CA, a PEM file; the system's
// roots otherwise) and a client certificate to present (REDIS_CERT + REDIS_KEY), for a door
// with `tls_auth_clients`. Without TLS in the URL these must not be set.
function tlsOptions(url) {
  const files = { ca: process.env.REDIS_CA, cert: process.env.REDIS_CERT, key: process.env.REDIS_KEY };
  const given = Object.entries(files).filter(([, v]) => v);
  if (!url.startsWith("rediss://")) {
    if (given.length > 0) {
      throw new Error(`REDIS_${given[0][0].toUpperCase()} is set but REDIS_URL is not rediss://`);
    }
    return undefined;
  }
  if (Boolean(files.cert) !== Boolean(files.key)) {
    throw new Error("REDIS_CERT and REDIS_KEY go together");
  }
  const socket = { tls: true };
  for (const [name, path] of given) {
    socket[name] = fs.readFileSync(path);
  }
  return socket;
}

async function main() {
  const { host, port } = listenAddress();
  const url = process.env.REDIS_URL;
  if (!url) {
    throw new Error("REDIS_URL is not set (e.g. redis://127.0.0.1:6379)");
  }
  const secret = process.env.SESSION_SECRET || DEV_SECRET;
  if (secret.length < 32) {
    throw new Error("SESSION_SECRET must be at least 32 characters");
  }

  const client = createClient({ url, socket: tlsOptions(url) });
  // node-redis reconnects by itself; without a listener an 'error' event would kill the process
  client.on("error", (err) => console.error(`express app: redis client: ${err.message}`));
  await client.connect();

  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.status(client.isReady ? 200 : 503).type("text/plain").send(client.isReady ? "ok\n" : "redis not ready\n");
  });
  app.use(
    "/api",
    session({
      store: new RedisStore({ client, prefix: "sess:" }),
      name: "id",
      secret,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: "lax", secure: false },
    }),
  );

  app.post("/api/counter", (req, res) => {
    const counter = counterOf(req.session) + 1;
    req.session.counter = counter;
    req.session.save((err) => {
      if (err) {
        storeFailed(res, "saving the session", err);
        return;
      }
      res.json({ counter, served_by: 0 });
    });
  });

  app.get("/api/counter", (req, res) => {
    res.json({ counter: counterOf(req.session), served_by: 0 });
  });

  app.post("/api/logout", (req, res) => {
    req.session.destroy((err) => {
      if (err) {
        storeFailed(res, "destroying the session", err);
        return;
      }
      res.clearCookie("id", { httpOnly: true, sameSite: "lax", secure: false });
      res.json({ signed_out: true, served_by: 0 });
    });
  });

  // express-session passes a failed load (GET) or touch (EXPIRE) here
  app.use((err, _req, res, _next) => storeFailed(res, "loading the session", err));

  const server = app.listen(port, host, () => {
    console.log(`express app: serving on http://${host}:${port} with sessions in ${url}`);
  });
  server.on("error", (err) => {
    console.error(`express app: listening on ${host}:${port}: ${err.message}`);
    process.exit(1);
  });
  const stop = () => {
    server.close(() => client.quit().finally(() => process.exit(0)));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(`express app: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
