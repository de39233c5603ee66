// The SDK's request bodies held to the server's own spec (GET /openapi.json):
// every parameter type filled in full (tsc refuses a member the types do
// not have), every call recorded, and the members sent must be exactly the
// properties of the operation's request schema.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DreamAPI, DreamClient, REQUEST_FIELDS,
  type CustomerCreateParams, type CustomerUpdateParams, type DryRunParams, type KeyCreateParams,
  type TierInput, type TrackParams, type WebhookCreateParams, type WebhookUpdateParams,
} from 'dream-api';
import { url } from './harness.js';

type Schema = { $ref?: string; properties?: Record<string, Schema>; allOf?: Schema[]; items?: Schema };
type Spec = { paths: Record<string, Record<string, { operationId?: string; requestBody?: { content: Record<string, { schema: Schema }> } }>>; components: { schemas: Record<string, Schema> } };

function resolve(spec: Spec, s: Schema): Schema {
  while (s.$ref) s = spec.components.schemas[s.$ref.replace('#/components/schemas/', '')];
  return s;
}

function properties(spec: Spec, s: Schema): string[] {
  s = resolve(spec, s);
  const out = new Set(Object.keys(s.properties ?? {}));
  for (const a of s.allOf ?? []) for (const k of properties(spec, a)) out.add(k);
  return [...out].sort();
}

/** The JSON request schema of an operation. */
function requestSchema(spec: Spec, operationId: string): { method: string; path: string; schema: Schema } {
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (op?.operationId === operationId) {
        const schema = op.requestBody?.content?.['application/json']?.schema;
        assert.ok(schema, `${operationId} has no JSON request body in the spec`);
        return { method: method.toUpperCase(), path, schema };
      }
    }
  }
  throw new Error(`operationId ${operationId} is not in the spec`);
}

test('request fields are exactly those of openapi.yaml', async () => {
  const spec = (await (await fetch(url + '/openapi.json')).json()) as Spec;

  const calls: { method: string; path: string; body: Record<string, unknown> }[] = [];
  const record: typeof fetch = async (input, init) => {
    const u = new URL(String(input));
    calls.push({ method: init?.method ?? 'GET', path: u.pathname, body: init?.body ? JSON.parse(String(init.body)) : {} });
    return new Response('{}', { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  const dream = new DreamAPI({ secretKey: 'sk_test_x', baseUrl: 'http://sdk.test', fetch: record });
  const browser = new DreamClient({ publishableKey: 'pk_test_x', baseUrl: 'http://sdk.test', fetch: record, token: 'jwt' });

  // Every member of every parameter type: a member the type lacks is a tsc error.
  const create: Required<CustomerCreateParams> = { email: 'a@b.co', clerkUserId: 'user_1', firstName: 'A', lastName: 'B', plan: 'free', password: 'pw', metadata: {} };
  const update: Required<CustomerUpdateParams> = { email: 'a@b.co', firstName: 'A', lastName: 'B', plan: 'pro', metadata: {}, password: 'pw' };
  const track: Required<TrackParams> = { customerId: 'cus_1', feature: 'requests', quantity: 1, metadata: {} };
  const tier: Required<TierInput> = {
    name: 'pro', displayName: 'Pro', price: 1, currency: 'usd', interval: 'month', limit: 1, limits: {}, features: {},
    rateLimitPerMinute: 1, priceId: null, productId: null,
  };
  const key: Required<KeyCreateParams> = { rotate: 'key_1', gracePeriodHours: 1 };
  const hook: Required<WebhookCreateParams> = { url: 'https://a.test/h', events: ['*'], description: 'd' };
  const hookUpdate: Required<WebhookUpdateParams> = { url: 'https://a.test/h', events: ['*'], description: 'd', enabled: false };
  const dry: Required<DryRunParams> = { plan: 'free', feature: 'requests', quantity: 1, usage: 0, limit: 1, customerId: 'cus_1', metadata: {}, state: '' };

  const want: [keyof typeof REQUEST_FIELDS, () => Promise<unknown>][] = [
    ['createCustomer', () => dream.customers.create(create)],
    ['updateCustomer', () => dream.customers.update('cus_1', update)],
    ['track', () => dream.track({ ...track, idempotencyKey: 'k' })],
    ['check', () => dream.check({ ...track, idempotencyKey: 'k' })],
    ['trackBatch', () => dream.trackBatch([{ ...track, idempotencyKey: 'e' }], { idempotencyKey: 'k' })],
    ['putPlatformTiers', () => dream.tiers.replace([tier])],
    ['createKey', () => dream.keys.create(key)],
    ['rollbackPlugin', () => dream.plugin.rollback('plg_1')],
    ['dryRunPlugin', () => dream.plugin.dryRun(dry, { version: 'plg_1' })],
    ['createCheckout', () => dream.checkout('cus_1', 'pro', { successUrl: 'https://a.test/s', cancelUrl: 'https://a.test/c', idempotencyKey: 'k' })],
    ['createCustomerPortal', () => dream.portal('cus_1', { returnUrl: 'https://a.test/r', idempotencyKey: 'k' })],
    ['meCheckout', () => browser.checkout('pro', { successUrl: 'https://a.test/s', cancelUrl: 'https://a.test/c', idempotencyKey: 'k' })],
    ['signIn', () => browser.signIn('a@b.co', 'pw')],
    ['refreshSession', () => browser.refresh('rt_x')],
    ['signOut', () => browser.signOut('rt_x')],
    ['resetPassword', () => browser.resetPassword('prt_x', 'pw')],
    ['createWebhook', () => dream.webhooks.create(hook, { idempotencyKey: 'k' })],
    ['updateWebhook', () => dream.webhooks.update('whe_1', hookUpdate)],
    // No body: the schema is Empty.
    ['rotateWebhookSecret', () => dream.webhooks.rotateSecret('whe_1')],
    ['testWebhook', () => dream.webhooks.test('whe_1')],
    ['retryWebhookDelivery', () => dream.webhooks.retry('whe_1', 'evt_1')],
  ];
  assert.deepEqual(want.map(([op]) => op).sort(), Object.keys(REQUEST_FIELDS).sort(), 'every operation of REQUEST_FIELDS is exercised');
  for (const [op, call] of want) {
    calls.length = 0;
    await call().catch(() => undefined); // the recorded answers are empty
    const { method, path, schema } = requestSchema(spec, op);
    assert.equal(calls.length, 1, op);
    assert.equal(calls[0].method, method, op);
    assert.match(calls[0].path, new RegExp('^' + path.replace(/\{[^}]+\}/g, '[^/]+') + '$'), op);
    const specFields = properties(spec, schema);
    assert.deepEqual(Object.keys(calls[0].body).sort(), specFields, `${op}: the SDK sends other members than the spec has`);
    assert.deepEqual([...REQUEST_FIELDS[op]].sort(), specFields, `${op}: REQUEST_FIELDS`);
  }
  // The members of a batch event, one level down.
  calls.length = 0;
  await dream.trackBatch([{ ...track, idempotencyKey: 'e' }]).catch(() => undefined);
  const eventFields = properties(spec, resolve(spec, requestSchema(spec, 'trackBatch').schema).properties!.events.items!);
  assert.deepEqual(Object.keys((calls[0].body.events as object[])[0]).sort(), eventFields);
  // The members of a tier, one level down.
  calls.length = 0;
  await dream.tiers.replace([tier]);
  const tiersSchema = resolve(spec, requestSchema(spec, 'putPlatformTiers').schema);
  const tierFields = properties(spec, tiersSchema.properties!.tiers.items!);
  assert.deepEqual(Object.keys((calls[0].body.tiers as object[])[0]).sort(), tierFields);
});
