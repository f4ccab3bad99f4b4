import type { Client } from '../model.js';
import type { FormParams } from '../protocol/form.js';

/** RFC 6749 §5.1 successful response members. */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  id_token?: string;
  [member: string]: unknown;
}

export interface GrantRequest {
  client: Client;
  params: FormParams;
  now: number;
}

/** One grant_type. The token endpoint finds it by `grantType` in a Map. */
export interface GrantHandler {
  readonly grantType: string;
  /** Parameters the grant reads; every other parameter is ignored. */
  readonly parameters: ReadonlySet<string>;
  /** Parameters that may appear more than once (RFC 8707 `resource`). */
  readonly repeatable: ReadonlySet<string>;
  /** Whether public clients (token_endpoint_auth_method `none`) may use it. */
  readonly allowsPublicClients: boolean;
  handle(request: GrantRequest): Promise<TokenResponse>;
}

/** Grants by grant_type, built once at startup from the enabled handlers. */
export type GrantRegistry = ReadonlyMap<string, GrantHandler>;

export function createGrantRegistry(handlers: readonly GrantHandler[]): GrantRegistry {
  return new Map(handlers.map((h) => [h.grantType, h]));
}
