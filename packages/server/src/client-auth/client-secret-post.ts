import { InvalidClientError } from '../errors.js';
import { verifyClientSecret } from './client-secret.js';
import type { ClientAuthMethod } from './types.js';

export const clientSecretPost: ClientAuthMethod = {
  name: 'client_secret_post',
  present: (request) => request.params.has('client_secret'),
  async authenticate(request, deps, now) {
    const clientId = request.params.get('client_id');
    const secret = request.params.get('client_secret');
    if (clientId === undefined || secret === undefined) throw new InvalidClientError();
    return verifyClientSecret(clientId, secret, 'client_secret_post', deps, now, () => new InvalidClientError());
  },
};
