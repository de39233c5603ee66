// usage.history against the real server. Its clock cannot be moved, so a
// past period is made by changing the tier's interval: a count of this
// calendar year is no longer the current period once the tier counts by
// day (unless today is January 1st, when both start together).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DreamAPI, DreamAPIError, type PastUsage, type UsageHistory } from 'dream-api';
import { createPlatform, email, url } from './harness.js';

test('usage.history lists past periods, filtered, newest first', async () => {
  const p = await createPlatform('History JS');
  const dream = new DreamAPI({ secretKey: p.secretKey, baseUrl: url });
  await dream.tiers.replace([{ name: 'free', interval: 'year', limits: { requests: 50, exports: 5 } }]);
  const c = await dream.customers.create({ email: email('history') });
  await dream.track({ customerId: c.id, quantity: 4 });
  await dream.track({ customerId: c.id, feature: 'exports', quantity: 2 });

  const none: UsageHistory = await dream.usage.history({ customerId: c.id });
  assert.deepEqual(none, { data: [], hasMore: false }, 'the current period is not history');

  await dream.tiers.replace([{ name: 'free', interval: 'day', limits: { requests: 50 } }]);
  const now = new Date();
  const yearStart = `${now.getUTCFullYear()}-01-01T00:00:00Z`;
  const janFirst = now.getUTCMonth() === 0 && now.getUTCDate() === 1;
  const h = await dream.usage.history({ customerId: c.id });
  const rows = (d: PastUsage[]) => d.map((u) => [u.feature, u.count, u.limit, u.remaining, u.periodStart]);
  assert.deepEqual(rows(h.data), janFirst ? [] : [
    ['exports', 2, null, null, yearStart], // the day tier does not meter exports
    ['requests', 4, 50, 46, yearStart],
  ]);
  if (!janFirst) {
    assert.deepEqual(rows((await dream.usage.history({ customerId: c.id, feature: 'requests', to: new Date() })).data), [['requests', 4, 50, 46, yearStart]]);
    const limited = await dream.usage.history({ customerId: c.id, limit: 1 });
    assert.equal(limited.data.length, 1);
    assert.equal(limited.hasMore, true);
    assert.equal((await dream.usage.history({ customerId: c.id, from: `${now.getUTCFullYear() + 1}-01-01` })).data.length, 0);
  }
  assert.equal((await dream.usage(c.id)).usage[0].count, 0, 'usage(customerId) still answers this period');

  await assert.rejects(dream.usage.history({ customerId: c.id, from: 'last week' }), (e: unknown) => {
    assert.ok(e instanceof DreamAPIError);
    assert.equal(e.status, 422);
    assert.equal(e.code, 'validation_failed');
    return true;
  });
  await assert.rejects(new DreamAPI({ secretKey: p.test.secretKey, baseUrl: url }).usage.history({ customerId: c.id }), (e: unknown) => {
    assert.ok(e instanceof DreamAPIError);
    assert.equal(e.status, 404, 'the test key sees no live customer');
    return true;
  });
});
