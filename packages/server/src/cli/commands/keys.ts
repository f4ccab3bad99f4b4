import type { Command } from 'commander';
import type { KeyPurpose } from '../../model.js';
import { createKeySet } from '../../server.js';
import { CliError, isoTime, now, output, table, withStorage } from '../shared.js';

function status(key: { activatesAt: number; retiresAt: number | null; expiresAt: number | null }, at: number): string {
  if (key.expiresAt !== null && key.expiresAt <= at) return 'expired';
  if (key.activatesAt > at) return 'published (pending)';
  if (key.retiresAt !== null && key.retiresAt <= at) return 'retired (still published)';
  return 'signing';
}

export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('signing keys');
  keys
    .command('list')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const at = now();
        const list = (await storage.keys.listAllKeys()).map((k) => ({
          kid: k.kid,
          purpose: k.purpose,
          alg: k.alg,
          status: status(k, at),
          activates_at: isoTime(k.activatesAt),
          retires_at: k.retiresAt === null ? null : isoTime(k.retiresAt),
          expires_at: k.expiresAt === null ? null : isoTime(k.expiresAt),
        }));
        if (opts.json) return output(true, { keys: list });
        process.stdout.write(`${table(list.map((k) => ({ ...k, retires_at: k.retires_at ?? '-', expires_at: k.expires_at ?? '-' })))}\n`);
      });
    });
  keys
    .command('rotate')
    .description('publish a new key now; it signs after keys.prePublication (or at once with --immediate)')
    .option('--purpose <purpose>', 'access_token, id_token or all', 'all')
    .option('--immediate', 'sign with the new key at once (suspected compromise)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { purpose: string; immediate?: boolean; json?: boolean }, command: Command) => {
      const purposes: KeyPurpose[] =
        opts.purpose === 'all' ? ['access_token', 'id_token'] : opts.purpose === 'access_token' || opts.purpose === 'id_token' ? [opts.purpose] : [];
      if (purposes.length === 0) throw new CliError('--purpose must be access_token, id_token or all', 2);
      await withStorage(command, async (storage, config) => {
        const { keys: keySet } = createKeySet(config, storage);
        const at = now();
        const rotated: Record<string, unknown>[] = [];
        for (const purpose of purposes) {
          const kid = await keySet.rotate(purpose, at, { immediate: opts.immediate === true });
          rotated.push({ purpose, kid, signs_from: isoTime(opts.immediate ? at : at + config.keys.prePublication) });
        }
        if (opts.json) return output(true, { rotated });
        process.stdout.write(`${table(rotated.map((r) => ({ purpose: String(r.purpose), kid: String(r.kid), signs_from: String(r.signs_from) })))}\n`);
      });
    });

  keys
    .command('revoke <kid>')
    .description('withdraw a key now (suspected compromise): it leaves the JWKS and tokens it signed stop being accepted')
    .option('--json', 'machine-readable output')
    .action(async (kid: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage, config) => {
        const at = now();
        const key = (await storage.keys.listPublishedKeys(at)).find((k) => k.kid === kid);
        if (!key) throw new CliError(`no published key ${kid}`);
        const { keys: keySet } = createKeySet(config, storage);
        // A key still signing is replaced first by one that signs at once, so issuance never stops.
        const replacement = key.retiresAt === null || key.retiresAt > at ? await keySet.rotate(key.purpose, at, { immediate: true }) : null;
        await keySet.revoke(kid, at);
        output(opts.json, { kid, purpose: key.purpose, revoked: true, replaced_by: replacement, effective_within: `${config.keys.refreshInterval}s on every instance` });
      });
    });
}
