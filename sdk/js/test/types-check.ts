// Compiled, never run: what the types must refuse (tsc fails when a line
// marked with the expect-error directive compiles).
import { DreamAPI, TierLimitError, type TrackResult } from 'dream-api';

export async function refusals(dream: DreamAPI): Promise<void> {
  // @ts-expect-error a misspelt member
  await dream.track({ customerId: 'cus_1', quantiy: 1 });
  // @ts-expect-error quantity is a number
  await dream.track({ customerId: 'cus_1', quantity: '1' });
  // @ts-expect-error email is a string
  await dream.customers.create({ email: 5 });
  // @ts-expect-error checkout needs a tier
  await dream.checkout('cus_1');
  const r: TrackResult = await dream.check('cus_1');
  const allowed: boolean = r.allowed;
  void allowed;
  try {
    await dream.track('cus_1');
  } catch (e) {
    if (e instanceof TierLimitError) {
      const remaining: number = e.usage.remaining;
      void remaining;
    }
  }
}

export async function webhookRefusals(dream: DreamAPI): Promise<void> {
  // @ts-expect-error a webhook endpoint needs a url
  await dream.webhooks.create({ events: ['*'] });
  // @ts-expect-error enabled is a boolean
  await dream.webhooks.update('whe_1', { enabled: 'yes' });
  // the static verify stays next to the instance namespace
  const ev = await DreamAPI.webhooks.verify('{}', 't=1,v1=00', 'whsec_x');
  const secret: string = (await dream.webhooks.rotateSecret('whe_1')).secret;
  void ev;
  void secret;
}
