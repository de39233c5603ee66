// Retry rules with a scripted fetch: which answers are retried, with the
// same Idempotency-Key, honouring Retry-After.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DreamAPI, DreamAPIError, DreamConnectionError, backoffMs } from 'dream-api';

type Step = { status: number; body?: unknown; headers?: Record<string, string> } | 'network';

function scripted(steps: Step[]) {
  const seen: { method: string; headers: Record<string, string>; body: string }[] = [];
  const f: typeof fetch = async (_input, init) => {
    seen.push({ method: init?.method ?? 'GET', headers: { ...(init?.headers as Record<string, string>) }, body: String(init?.body ?? '') });
    const s = steps[Math.min(seen.length - 1, steps.length - 1)];
    if (s === 'network') throw new TypeError('fetch failed');
    return new Response(JSON.stringify(s.body ?? {}), { status: s.status, headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'req_f', ...s.headers } });
  };
  return { f, seen };
}

const ok = { status: 200, body: { success: true, allowed: true, usage: { count: 1 }, plugin: null } };
const err = (status: number, code: string, headers?: Record<string, string>): Step => ({
  status, headers: { 'Retry-After': '0', ...headers }, body: { error: 'E', code, message: 'm', requestId: 'req_f' },
});

test('retried answers reuse the Idempotency-Key', async () => {
  const cases: [string, Step[], number, string | null][] = [
    ['network error', ['network', ok], 2, null],
    ['5xx', [err(500, 'internal'), err(503, 'unavailable'), ok], 3, null],
    ['in progress', [err(409, 'idempotency_in_progress'), ok], 2, null],
    ['rate limited', [err(429, 'rate_limited'), ok], 2, null],
    ['gives up after maxRetries', [err(500, 'internal')], 3, 'internal'],
    ['422 is final', [err(422, 'validation_failed')], 1, 'validation_failed'],
    ['idempotency_conflict is final', [err(409, 'idempotency_conflict')], 1, 'idempotency_conflict'],
    ['tier limit is final', [{ status: 429, body: { error: 'E', code: 'tier_limit_reached', message: 'm', requestId: 'r', usage: { count: 3 } } }], 1, 'tier_limit_reached'],
  ];
  for (const [name, steps, n, code] of cases) {
    const { f, seen } = scripted(steps);
    const dream = new DreamAPI({ secretKey: 'sk_test_x', baseUrl: 'http://sdk.test', fetch: f });
    const p = dream.track('cus_1');
    if (code) await assert.rejects(p, (e: unknown) => e instanceof DreamAPIError && e.code === code, name);
    else await p;
    assert.equal(seen.length, n, name);
    const key = seen[0].headers['Idempotency-Key'];
    assert.match(key, /^idk_[0-9a-f]{32}$/, name);
    for (const s of seen) {
      assert.equal(s.headers['Idempotency-Key'], key, name);
      assert.equal(s.body, '{"customerId":"cus_1"}', name);
      assert.equal(s.headers.Authorization, 'Bearer sk_test_x', name);
    }
  }
});

test('Retry-After is honoured, and a long one ends the call', async () => {
  let { f, seen } = scripted([err(429, 'rate_limited', { 'Retry-After': '1' }), ok]);
  const t0 = Date.now();
  await new DreamAPI({ secretKey: 'k', baseUrl: 'http://sdk.test', fetch: f }).track('cus_1');
  assert.ok(Date.now() - t0 >= 950, 'retried before Retry-After');
  assert.equal(seen.length, 2);

  ({ f, seen } = scripted([err(429, 'rate_limited', { 'Retry-After': '3600' })]));
  await assert.rejects(new DreamAPI({ secretKey: 'k', baseUrl: 'http://sdk.test', fetch: f }).track('cus_1'),
    (e: unknown) => e instanceof DreamAPIError && e.retryAfter === 3600);
  assert.equal(seen.length, 1);
});

test('DELETE is not resent after a network error; GET has no key', async () => {
  let { f, seen } = scripted(['network', { status: 200, body: { deleted: true, id: 'cus_1' } }]);
  await assert.rejects(new DreamAPI({ secretKey: 'k', baseUrl: 'http://sdk.test', fetch: f }).customers.del('cus_1'), DreamConnectionError);
  assert.equal(seen.length, 1);
  ({ f, seen } = scripted([{ status: 200, body: { customerId: 'cus_1', plan: 'free', usage: [] } }]));
  await new DreamAPI({ secretKey: 'k', baseUrl: 'http://sdk.test', fetch: f }).usage('cus_1');
  assert.equal(seen[0].headers['Idempotency-Key'], undefined);
});

test('the caller’s key is sent; environment defaults', async () => {
  const { f, seen } = scripted([ok]);
  process.env.DREAM_SECRET_KEY = 'sk_test_env';
  process.env.DREAM_API_URL = 'http://env.test/';
  const dream = new DreamAPI({ fetch: f });
  assert.equal(dream.baseUrl, 'http://env.test');
  await dream.track({ customerId: 'cus_1', feature: 'exports', quantity: 2, idempotencyKey: 'mine' });
  assert.equal(seen[0].headers['Idempotency-Key'], 'mine');
  assert.equal(seen[0].headers.Authorization, 'Bearer sk_test_env');
  assert.equal(seen[0].body, '{"customerId":"cus_1","feature":"exports","quantity":2}');
  delete process.env.DREAM_SECRET_KEY;
  delete process.env.DREAM_API_URL;
  assert.equal(new DreamAPI({ fetch: f }).baseUrl, 'http://127.0.0.1:8787');
});

test('backoff grows, with jitter', () => {
  for (const [n, max] of [[1, 500], [2, 1000], [3, 2000], [10, 8000]]) {
    for (let i = 0; i < 50; i++) {
      const d = backoffMs(n);
      assert.ok(d >= max / 2 && d <= max, `backoffMs(${n}) = ${d}`);
    }
  }
});
