// Types of server.mjs, for TypeScript callers (the end-to-end test).
import type { FastifyInstance } from 'fastify';

export interface OrdersApiOptions {
  /** Gatehouse issuer identifier. */
  issuer: string;
  /** This API's resource identifier (the tokens' audience). */
  audience: string;
  /** Where clients find the RFC 9728 document (default: derived from the audience). */
  resourceMetadataUrl?: string;
  /** Fastify logger option (default false). */
  logger?: boolean | object;
}

export interface Order {
  id: number;
  item: string;
  quantity: number;
  placedBy: string | null;
}

export function createOrdersApi(options: OrdersApiOptions): FastifyInstance;
export function main(env?: Record<string, string | undefined>): Promise<FastifyInstance | undefined>;
