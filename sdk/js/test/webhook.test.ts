// DreamAPI.webhooks.verify against signatures made as API.md says.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { DreamAPI, WebhookSignatureError } from 'dream-api';

const sign = (secret: string, t: number, body: string) => createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');

test('webhooks.verify', async () => {
  const now = 1_800_000_000;
  const body = JSON.stringify({ id: 'evt_1', type: 'usage.threshold', createdAt: '2027-01-15T08:00:00Z', mode: 'test', data: { threshold: 80 } });
  const t = now - 10;
  const ev = await DreamAPI.webhooks.verify(body, `t=${t},v1=${sign('whsec_a', t, body)}`, 'whsec_a', { nowSec: now });
  assert.equal(ev.id, 'evt_1');
  assert.equal(ev.data.threshold, 80);
  const two = `t=${t},v1=${sign('whsec_old', t, body)},v1=${sign('whsec_a', t, body)}`;
  assert.equal((await DreamAPI.webhooks.verify(new TextEncoder().encode(body), two, 'whsec_a', { nowSec: now })).type, 'usage.threshold');

  const bad: [string, string, string][] = [
    ['other secret', `t=${t},v1=${sign('whsec_a', t, body)}`, 'whsec_b'],
    ['too old', `t=${t - 600},v1=${sign('whsec_a', t - 600, body)}`, 'whsec_a'],
    ['no t', `v1=${sign('whsec_a', t, body)}`, 'whsec_a'],
    ['empty', '', 'whsec_a'],
  ];
  for (const [name, header, secret] of bad) {
    await assert.rejects(DreamAPI.webhooks.verify(body, header, secret, { nowSec: now }), WebhookSignatureError, name);
  }
  await assert.rejects(DreamAPI.webhooks.verify(body + ' ', `t=${t},v1=${sign('whsec_a', t, body)}`, 'whsec_a', { nowSec: now }), WebhookSignatureError);
});
