// The SDK against the real server: limits, the whole surface, a retried
// POST counted once, pagination over 250 customers, every error shape.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  DreamAPI, DreamAPIError, DreamClient, DreamConnectionError, TierLimitError, WebhookSignatureError,
  type Customer, type TrackResult, type WebhookDelivery, type WebhookEndpoint,
} from 'dream-api';
import { createPlatform, email, url } from './harness.js';

describe('limits and the surface', () => {
  test('track enforces the limit; check never throws for a denial', async () => {
    const p = await createPlatform('Limits JS');
    const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
    const tiers = await dream.tiers.replace([
      { name: 'free', limit: 3 },
      { name: 'pro', price: 1500, limits: { requests: 1000, exports: -1 }, features: { sso: true } },
    ]);
    assert.deepEqual(tiers.map((t) => [t.name, t.limits.requests, t.priceId]), [['free', 3, null], ['pro', 1000, null]]);
    assert.equal((await dream.tiers.list())[1].features.sso, true);

    const c = await dream.customers.create({ email: email('limit'), firstName: 'Li', metadata: { team: 'core' } });
    for (let i = 1; i <= 3; i++) {
      const r: TrackResult = await dream.track(c.id);
      assert.equal(r.allowed, true);
      assert.equal(r.usage.count, i);
    }
    await assert.rejects(dream.track(c.id), (e: unknown) => {
      assert.ok(e instanceof TierLimitError, String(e));
      assert.ok(e instanceof DreamAPIError);
      assert.equal(e.code, 'tier_limit_reached');
      assert.equal(e.status, 429);
      assert.equal(e.usage.count, 3);
      assert.equal(e.usage.remaining, 0);
      assert.equal(e.usage.plan, 'free');
      assert.match(e.requestId ?? '', /^req_/);
      return true;
    });
    const chk = await dream.check(c.id);
    assert.equal(chk.allowed, false);
    assert.equal(chk.usage.remaining, 0);
    assert.equal((await dream.usage(c.id)).usage[0].count, 3);

    const up = await dream.customers.update(c.id, { plan: 'pro', metadata: { team: null, seats: 5 } });
    assert.equal(up.plan, 'pro');
    assert.deepEqual(up.metadata, { seats: 5 });
    const ex = await dream.track({ customerId: c.id, feature: 'exports', quantity: 7, metadata: { job: 'x' }, idempotencyKey: 'job-x' });
    assert.equal(ex.usage.count, 7);
    assert.equal(ex.usage.limit, -1);
    const replay = await dream.track({ customerId: c.id, feature: 'exports', quantity: 7, metadata: { job: 'x' }, idempotencyKey: 'job-x' });
    assert.equal(replay.usage.count, 7, 'the same Idempotency-Key counted twice');

    const got = await dream.customers.get(c.id);
    assert.equal(got.firstName, 'Li');
    assert.ok(got.usage.some((u) => u.feature === 'exports' && u.count === 7));

    const stats = await dream.stats();
    assert.equal(stats.mode, 'live');
    assert.equal(stats.customers, 1);
    assert.equal(stats.customersPerPlan.pro, 1);

    assert.deepEqual(await dream.customers.del(c.id), { deleted: true, id: c.id });
    await assert.rejects(dream.customers.get(c.id), { name: 'DreamAPIError', code: 'not_found', status: 404 });
  });

  test('keys and plugin', async () => {
    const p = await createPlatform('Keys JS');
    const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
    const k = await dream.keys.create();
    assert.match(k.secretKey, /^sk_live_/);
    const rot = await dream.keys.rotate(k.key.id, 1);
    assert.equal(rot.publishableKey, k.publishableKey);
    const list = await dream.keys.list();
    assert.ok(list.find((r) => r.id === k.key.id)?.expiresAt, 'rotated key has no expiresAt');
    assert.ok((await dream.keys.revoke(rot.key.id)).revokedAt);
    await assert.rejects(new DreamAPI({ secretKey: rot.secretKey, baseUrl: url }).tiers.list(), { code: 'invalid_api_key', status: 401 });

    const wasm = readFileSync(join(process.env.DREAM_PLUGINS_DIR ?? '', 'allow_all.wasm'));
    const st = await dream.plugin.upload(wasm, { onError: 'deny' });
    assert.equal(st.active, true);
    assert.equal(st.onError, 'deny');
    assert.equal(st.size, wasm.length);
    const dr = await dream.plugin.dryRun({ plan: 'free', usage: 99, limit: 3, quantity: 1 });
    assert.equal(dr.allowed, true);
    assert.equal((await dream.plugin.get()).active?.version, st.version);
    await assert.rejects(dream.plugin.rollback('plg_missing'), { code: 'not_found' });
    assert.deepEqual(await dream.plugin.remove(), { active: null });
    assert.equal((await dream.plugin.get()).active, null);
    assert.equal((await dream.plugin.rollback(st.version)).version, st.version);
  });

  test('DreamClient: tiers with a publishable key, never a secret key', async () => {
    const p = await createPlatform('Browser JS');
    const client = new DreamClient({ publishableKey: p.publishableKey, baseUrl: url });
    const tiers = await client.tiers();
    assert.deepEqual(tiers.map((t) => t.name), ['free', 'pro']);
    assert.throws(() => new DreamClient({ publishableKey: p.secretKey, baseUrl: url }), /publishable/);
    await assert.rejects(client.me('not-a-jwt'), DreamAPIError);
    await assert.rejects(client.me(), /token/);
  });

  test('DreamClient: sign-in without Clerk, me, refresh, sign-out, password reset', async () => {
    const p = await createPlatform('Sign-in JS');
    const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
    const addr = email('signin');
    const c = await dream.customers.create({ email: addr, password: 'violet staple engine' });
    const client = new DreamClient({ publishableKey: p.publishableKey, baseUrl: url });
    await assert.rejects(client.signIn(addr, 'wrong password!'), { code: 'invalid_api_key' });
    const first = await client.signIn(addr, 'violet staple engine');
    assert.match(first.refreshToken, /^rt_/);
    assert.equal((await client.me()).id, c.id);
    const next = await client.refresh();
    assert.notEqual(next.refreshToken, first.refreshToken);
    assert.equal((await client.me()).id, c.id);
    // The used refresh token again ends the session.
    await assert.rejects(client.refresh(first.refreshToken), { code: 'invalid_api_key' });
    await assert.rejects(client.me(), { code: 'invalid_api_key' });

    const reset = await dream.customers.passwordReset(c.id);
    await client.resetPassword(reset.token, 'quartz lantern meadow');
    await assert.rejects(client.resetPassword(reset.token, 'another passphrase'), { code: 'invalid_api_key' });
    await client.signIn(addr, 'quartz lantern meadow');
    await client.signOut();
    await assert.rejects(client.me(), /token/);
  });
});

/**
 * A proxy in front of the server that forwards every request and, for the
 * first POST to path, throws the server's answer away and hangs up.
 */
async function dropFirst(path: string): Promise<{ url: string; keys: string[]; close: () => Promise<void> }> {
  const keys: string[] = [];
  let dropped = false;
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
    const up = await fetch(url + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
    const body = Buffer.from(await up.arrayBuffer());
    if (req.method === 'POST' && req.url === path) {
      keys.push(String(req.headers['idempotency-key'] ?? ''));
      if (!dropped) {
        dropped = true;
        req.socket.destroy();
        return;
      }
    }
    res.writeHead(up.status, Object.fromEntries(up.headers));
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, keys, close: () => new Promise((r) => server.close(() => r())) };
}

test('a POST whose answer was lost is retried with the same key and counted once', async () => {
  const p = await createPlatform('Retry JS');
  const direct = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
  for (const path of ['/api/customers', '/api/track']) {
    const proxy = await dropFirst(path);
    try {
      const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: proxy.url });
      if (path === '/api/customers') {
        const e = email('retry');
        const c = await dream.customers.create({ email: e });
        const page = await direct.customers.list({ email: e });
        assert.deepEqual(page.data.map((x) => x.id), [c.id]);
      } else {
        const c = await direct.customers.create({ email: email('retry-track') });
        const r = await dream.track(c.id);
        assert.equal(r.usage.count, 1);
        assert.equal((await direct.usage(c.id)).usage[0].count, 1, 'a retried track counted twice');
      }
      assert.equal(proxy.keys.length, 2, `${path}: ${proxy.keys.length} POSTs`);
      assert.match(proxy.keys[0], /^idk_/);
      assert.equal(proxy.keys[1], proxy.keys[0], `${path}: the retry had another Idempotency-Key`);
    } finally {
      await proxy.close();
    }
  }
  // Without retries the lost answer is a DreamConnectionError.
  const proxy = await dropFirst('/api/track');
  try {
    const c = await direct.customers.create({ email: email('no-retry') });
    const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: proxy.url, maxRetries: 0 });
    await assert.rejects(dream.track(c.id), DreamConnectionError);
  } finally {
    await proxy.close();
  }
});

test('pagination over 250 customers', async () => {
  const p = await createPlatform('Pages JS');
  const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
  const created = new Set<string>();
  for (let i = 0; i < 250; i += 25) {
    const batch = await Promise.all(Array.from({ length: 25 }, (_, j) => dream.customers.create({ email: `page${i + j}@example.com` })));
    for (const c of batch) created.add(c.id);
  }
  assert.equal(created.size, 250);

  const seen = new Set<string>();
  for await (const c of dream.customers.list()) {
    assert.ok(created.has(c.id) && !seen.has(c.id), c.id);
    seen.add(c.id);
  }
  assert.equal(seen.size, 250);

  let pages = 0;
  const ids: string[] = [];
  for await (const page of dream.customers.list({ limit: 7 }).pages()) {
    pages++;
    ids.push(...page.data.map((c: Customer) => c.id));
  }
  assert.equal(pages, 36);
  assert.equal(new Set(ids).size, 250);

  const first = await dream.customers.list({ limit: 5 });
  assert.equal(first.data.length, 5);
  assert.equal(first.hasMore, true);
  const rest = [];
  for await (const c of dream.customers.list({ startingAfter: first.data[4].id })) rest.push(c);
  assert.equal(rest.length, 245);
});

test('every error shape', async () => {
  const p = await createPlatform('Errors JS');
  const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
  await dream.tiers.replace([{ name: 'free', limit: 100, rateLimitPerMinute: 1 }, { name: 'pro' }]);
  const c = await dream.customers.create({ email: email('shape') });

  const cases: [string, () => Promise<unknown>, number, string][] = [
    ['unknown key', () => new DreamAPI({ secretKey: 'sk_live_nope', baseUrl: url }).usage(c.id), 401, 'invalid_api_key'],
    ['publishable key', () => new DreamAPI({ secretKey: p.publishableKey, baseUrl: url }).usage(c.id), 403, 'forbidden'],
    ['other mode', () => new DreamAPI({ secretKey: p.test.secretKey, baseUrl: url }).customers.get(c.id), 404, 'not_found'],
    ['duplicate email', () => dream.customers.create({ email: c.email.toUpperCase() }), 409, 'conflict'],
    ['key reused with another body', async () => {
      // A creation: a check keeps no record of its key, and tracks would use up the one call a minute.
      await dream.customers.create({ email: email('k1') }, { idempotencyKey: 'k-1' });
      return dream.customers.create({ email: email('k1-other') }, { idempotencyKey: 'k-1' });
    }, 409, 'idempotency_conflict'],
    ['no Stripe', () => dream.checkout(c.id, 'pro'), 424, 'stripe_not_connected'],
    ['body too large', () => dream.customers.create({ email: email('big'), metadata: { x: 'a'.repeat(2 << 20) } }), 413, 'body_too_large'],
    ['invalid fields', () => dream.customers.create({ email: 'not an email', plan: 'Nope!' }), 422, 'validation_failed'],
    // What TypeScript refuses, JavaScript callers can still send: the server's strict check answers.
    ['unknown field', () => dream.track({ customerId: c.id, quantiy: 2 } as never), 422, 'validation_failed'],
    ['wrong type', () => dream.track({ customerId: c.id, quantity: '2' } as never), 400, 'invalid_json'],
  ];
  for (const [name, call, status, code] of cases) {
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof DreamAPIError, `${name}: ${e}`);
      assert.ok(!(e instanceof TierLimitError), name);
      assert.equal(e.status, status, `${name}: ${e.status} ${e.code} ${e.message}`);
      assert.equal(e.code, code, name);
      assert.ok(e.message && e.summary, name);
      assert.match(e.requestId ?? '', /^req_/, name);
      if (code === 'validation_failed') assert.ok(e.fields.length > 0 && e.fields[0].field, `${name}: fields ${JSON.stringify(e.fields)}`);
      return true;
    });
  }
  const unknown = await dream.track({ customerId: c.id, quantiy: 2 } as never).catch((e: DreamAPIError) => e);
  assert.deepEqual((unknown as DreamAPIError).fields, [{ field: 'quantiy', message: 'unknown field' }]);

  // Rate limited: the Retry-After is longer than the client waits for.
  const rl = new DreamAPI({ secretKey: p.secretKey, baseUrl: url, maxRetryWaitMs: 1000 });
  const c2 = await dream.customers.create({ email: email('rl') });
  // The window is the UTC minute: two calls straddling its end are both
  // allowed, so keep out of its last 10 seconds.
  const sec = new Date().getUTCSeconds();
  if (sec >= 50) await new Promise((r) => setTimeout(r, (61 - sec) * 1000));
  await rl.track(c2.id);
  await assert.rejects(rl.track(c2.id), (e: unknown) => {
    assert.ok(e instanceof DreamAPIError && e.code === 'rate_limited' && e.status === 429, String(e));
    assert.ok(e.retryAfter !== null && e.retryAfter > 1 && e.retryAfter <= 60, `retryAfter ${e.retryAfter}`);
    return true;
  });

  // Nobody there: a DreamConnectionError.
  await assert.rejects(new DreamAPI({ secretKey: p.secretKey, baseUrl: 'http://127.0.0.1:1', maxRetries: 0 }).usage(c.id), DreamConnectionError);
});

test('webhooks: create, list, a signed ping, deliveries, rotate, retry, delete', async () => {
  // A receiver on loopback (the server runs with DREAM_WEBHOOK_ALLOW_PRIVATE=1).
  const got: { body: string; signature: string; eventId: string }[] = [];
  const receiver: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ body: Buffer.concat(chunks).toString('utf8'), signature: String(req.headers['dream-signature'] ?? ''), eventId: String(req.headers['dream-event-id'] ?? '') });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const eventually = async (what: string, cond: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 300; i++) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`waited 30 s for ${what}`);
  };
  try {
    const p = await createPlatform('Webhooks JS');
    const dream = new DreamAPI({ secretKey: p.test.secretKey, baseUrl: url });
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;

    const created = await dream.webhooks.create({ url: hookUrl, events: ['customer.created'], description: 'js sdk' });
    const ep: WebhookEndpoint = created.endpoint;
    assert.match(created.secret, /^whsec_/);
    assert.match(ep.id, /^whe_/);
    assert.deepEqual([ep.url, ep.events, ep.description, ep.enabled], [hookUrl, ['customer.created'], 'js sdk', true]);
    await assert.rejects(dream.webhooks.create({ url: 'ftp://x.test' }), (e: unknown) => e instanceof DreamAPIError && e.status === 422 && e.code === 'validation_failed');
    await assert.rejects(dream.webhooks.create({ url: hookUrl, secret: 'x' } as never), (e: unknown) => e instanceof DreamAPIError && e.status === 422);
    assert.deepEqual((await dream.webhooks.list()).map((e) => e.id), [ep.id]);
    assert.equal((await dream.webhooks.get(ep.id)).url, hookUrl);
    const upd = await dream.webhooks.update(ep.id, { description: 'renamed', events: ['*'] });
    assert.deepEqual([upd.description, upd.events, upd.url], ['renamed', ['*'], hookUrl]);

    // A ping, signed with the secret from create; the static and the instance verify agree.
    const d = await dream.webhooks.test(ep.id);
    assert.match(d.eventId, /^evt_/);
    assert.equal(d.type, 'ping');
    await eventually('the ping', () => got.length === 1);
    assert.equal(got[0].eventId, d.eventId);
    const ev = await DreamAPI.webhooks.verify<{ endpointId: string }>(got[0].body, got[0].signature, created.secret);
    assert.deepEqual([ev.id, ev.type, ev.mode, ev.data.endpointId], [d.eventId, 'ping', 'test', ep.id]);
    assert.equal((await dream.webhooks.verify(got[0].body, got[0].signature, created.secret)).id, d.eventId);
    await assert.rejects(dream.webhooks.verify(got[0].body, got[0].signature, 'whsec_wrong'), WebhookSignatureError);

    let deliveries: WebhookDelivery[] = [];
    await eventually('the ping delivered', async () => {
      deliveries = (await dream.webhooks.deliveries(ep.id)).data;
      return deliveries.length === 1 && deliveries[0].state === 'delivered';
    });
    assert.deepEqual([deliveries[0].eventId, deliveries[0].status, deliveries[0].attempt], [d.eventId, 200, 1]);
    const walked: string[] = [];
    for await (const x of dream.webhooks.deliveries(ep.id, { limit: 1 })) walked.push(x.eventId);
    assert.deepEqual(walked, [d.eventId]);

    // A new secret; the retried ping carries a v1 for it.
    const rot = await dream.webhooks.rotateSecret(ep.id);
    assert.match(rot.secret, /^whsec_/);
    assert.notEqual(rot.secret, created.secret);
    assert.equal(rot.endpoint.id, ep.id);
    assert.equal((await dream.webhooks.retry(ep.id, d.eventId)).eventId, d.eventId);
    await eventually('the retried ping', () => got.length === 2);
    assert.equal((await DreamAPI.webhooks.verify(got[1].body, got[1].signature, rot.secret)).id, d.eventId);

    assert.deepEqual(await dream.webhooks.del(ep.id), { deleted: true, id: ep.id });
    await assert.rejects(dream.webhooks.get(ep.id), (e: unknown) => e instanceof DreamAPIError && e.status === 404 && e.code === 'not_found');
    assert.deepEqual(await dream.webhooks.list(), []);
  } finally {
    receiver.close();
  }
});
