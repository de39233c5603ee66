// The seed's three lines, verbatim, against the real server with Stripe on
// stripe-mock; the package as installed from its tarball.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DreamAPI } from 'dream-api';
import { connectStripe, createPlatform, email as uniqueEmail } from './harness.js';

test("the seed's three lines run as written", async () => {
  const p = await createPlatform('Seed JS');
  await connectStripe(p.test.secretKey);
  process.env.DREAM_SECRET_KEY = p.test.secretKey; // the default of secretKey
  const dream = new DreamAPI();
  const email = uniqueEmail('seed');

  const customer = await dream.customers.create({ email, plan: 'free' });
  await dream.track(customer.id); // Enforces limits
  const checkout = await dream.checkout(customer.id, 'pro'); // Their Stripe

  assert.match(customer.id, /^cus_/);
  assert.equal(customer.plan, 'free');
  assert.match(checkout.url, /^https:\/\//);
  assert.match(checkout.sessionId, /^cs_/);
  const usage = await dream.usage(customer.id);
  assert.equal(usage.usage.find((u) => u.feature === 'requests')?.count, 1);
  const portal = await dream.portal(customer.id, { returnUrl: 'https://app.example.com/account' });
  assert.match(portal.url, /^https:\/\//);
  const again = await dream.customers.get(customer.id);
  assert.match(again.stripeCustomerId ?? '', /^cus_/);
});
