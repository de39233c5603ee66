// trackBatch against the real server: events decided in order, each
// event's own answer as its result, event keys counted once, a request
// refused as a whole rejected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DreamAPI, DreamAPIError, type TrackBatchResult } from 'dream-api';
import { createPlatform, email, url } from './harness.js';

function summary(r: TrackBatchResult): string {
  return r.status === 200 ? `200 ${r.usage.count}` : `${r.status} ${r.code}`;
}

test('trackBatch decides in order and answers each event', async () => {
  const p = await createPlatform('Batch JS');
  const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
  await dream.tiers.replace([{ name: 'free', limit: 3 }]);
  const c = await dream.customers.create({ email: email('batch') });
  const rs = await dream.trackBatch([
    { customerId: c.id },
    { customerId: c.id, quantity: 2, idempotencyKey: 'e1' },
    { customerId: c.id },
    { customerId: 'cus_nobody' },
    { customerId: c.id, quantity: 0 },
    { customerId: c.id, quantity: 2, idempotencyKey: 'e1' },
  ]);
  assert.deepEqual(rs.map(summary), ['200 1', '200 3', '429 tier_limit_reached', '404 not_found', '422 validation_failed', '200 3']);
  const denied = rs[2];
  assert.ok(denied.status !== 200 && denied.usage?.remaining === 0, JSON.stringify(denied));
  assert.equal((await dream.usage(c.id)).usage[0].count, 3);

  // The same events again under the same key: the first answer, nothing counted.
  const again = await dream.trackBatch([{ customerId: c.id, quantity: 2, idempotencyKey: 'e1' }], { idempotencyKey: 'b1' });
  const replay = await dream.trackBatch([{ customerId: c.id, quantity: 2, idempotencyKey: 'e1' }], { idempotencyKey: 'b1' });
  assert.deepEqual(replay, again);
  assert.equal((await dream.usage(c.id)).usage[0].count, 3);

  await assert.rejects(dream.trackBatch([]), (e: unknown) => {
    assert.ok(e instanceof DreamAPIError);
    assert.equal(e.code, 'validation_failed');
    assert.equal(e.fields[0].field, 'events');
    return true;
  });
});
