import { InvalidClientError } from '../errors.js';
import type { ClientAuthMethod } from './types.js';

/** Public clients: identified by client_id alone, only for grants that allow it. */
export const noClientAuthentication: ClientAuthMethod = {
  name: 'none',
  present: (request) => request.params.has('client_id'),
  async authenticate(request, deps) {
    const clientId = request.params.get('client_id') ?? '';
    const found = await deps.clients.loadClientCredentials(clientId);
    if (!found || found.client.disabled || found.client.tokenEndpointAuthMethod !== 'none') throw new InvalidClientError();
    return { client: found.client, method: 'none' };
  },
};
