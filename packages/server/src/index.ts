/**
 * @gatehouse/server: the Gatehouse authorization server.
 * @packageDocumentation
 */
export { createAuthorizationServer, type AuthorizationServer, type ServerOptions } from './server.js';
export { loadConfig, resolveConfig, maskConfig, ConfigError, ENV_VARIABLES } from './config/load.js';
export type { ConfigInput, GatehouseConfig } from './config/schema.js';
export {
  OAuthError,
  InvalidRequestError,
  InvalidClientError,
  InvalidGrantError,
  UnauthorizedClientError,
  UnsupportedGrantTypeError,
  InvalidScopeError,
  InvalidTargetError,
  InvalidTokenError,
  TemporarilyUnavailableError,
  type OAuthErrorCode,
} from './errors.js';
export { scopeSatisfies, isScopeGranted, parseScope } from './protocol/scope.js';
export type { Client, Resource, ResourceScope, TokenEndpointAuthMethod } from './model.js';
