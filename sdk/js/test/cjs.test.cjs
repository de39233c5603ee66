// require('dream-api') gives the CommonJS build, which works against the
// real server too.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const sdk = require('dream-api');

test('require("dream-api")', async () => {
  const { DreamAPI, DreamAPIError, TierLimitError, DreamClient } = sdk;
  assert.equal(typeof DreamAPI, 'function');
  assert.equal(sdk.default, DreamAPI);
  assert.ok(new TierLimitError(429, { code: 'tier_limit_reached', usage: {} }, null, null) instanceof DreamAPIError);
  assert.equal(typeof DreamClient, 'function');
  const dream = new DreamAPI({ secretKey: 'sk_live_nope', baseUrl: process.env.DREAM_API_URL });
  await assert.rejects(dream.tiers.list(), (e) => e instanceof DreamAPIError && e.code === 'invalid_api_key' && e.status === 401);
});
