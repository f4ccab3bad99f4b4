/**
 * @gatehouse/resource: what an API uses to check a token — signature, issuer, audience, expiry,
 * scope — and answer RFC 6750 errors.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068
 * @see https://www.rfc-editor.org/rfc/rfc6750
 */
export {
  createAccessTokenVerifier,
  verifyAccessToken,
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_ALGORITHMS,
  DEFAULT_CLOCK_TOLERANCE,
  type AccessTokenClaims,
  type AccessTokenVerifier,
  type IntrospectionOptions,
  type VerifierOptions,
} from './verifier.js';
export { BearerError, bearerErrors, type BearerErrorCode, type BearerErrors, type ChallengeParameters } from './errors.js';
export { extractBearerToken, type NodeRequestLike, type TokenSource } from './request.js';
export { scopeSatisfies, isScopeGranted, unmetScope, parseScopeClaim, type ScopeRequirement } from './scopes.js';
export { metadataUrl, type AuthorizationServerMetadata } from './issuer.js';
export {
  authenticateNodeRequest,
  writeBearerError,
  bearerMiddleware,
  authenticateFetchRequest,
  fastifyPreHandler,
  fastifyBearerAuth,
  accessTokenOf,
  type AuthenticatedRequest,
  type FastifyBearerAuthOptions,
  type FastifyInstanceLike,
  type FastifyReplyLike,
  type FastifyRequestLike,
  type FetchAuthentication,
  type RouteOptions,
  type ServerResponseLike,
} from './adapters.js';
export {
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  type ProtectedResourceMetadata,
  type ProtectedResourceMetadataInput,
} from './metadata.js';
