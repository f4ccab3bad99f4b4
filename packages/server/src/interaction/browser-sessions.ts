import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BrowserSessionRepository, ActiveBrowserSession } from '../storage/repositories/session-repository.js';
import type { User } from '../storage/repositories/user-repository.js';
import { randomToken, sha256 } from '../tokens/random.js';
import type { Cookies } from './cookies.js';
import { CSRF_COOKIE } from './csrf.js';

const SESSION_COOKIE = 'session';
/** last_seen_at is written at most this often per session. */
const TOUCH_INTERVAL = 60;

/**
 * The browser session: an opaque 256-bit cookie value, stored only as its SHA-256 digest, with
 * absolute and idle lifetimes. `sid` (public) names it in ID tokens.
 */
export class BrowserSessions {
  constructor(
    private readonly repository: BrowserSessionRepository,
    private readonly cookies: Cookies,
    private readonly lifetimes: { absoluteLifetime: number; idleTimeout: number },
  ) {}

  async current(request: FastifyRequest, now: number): Promise<ActiveBrowserSession | undefined> {
    const value = this.cookies.readCookie(request, SESSION_COOKIE);
    if (value === undefined || !/^[A-Za-z0-9_-]{43}$/.test(value)) return undefined;
    const hash = sha256(value);
    const active = await this.repository.findSession(hash, now, this.lifetimes.idleTimeout);
    if (active && now - active.session.lastSeenAt >= TOUCH_INTERVAL) await this.repository.touchSession(hash, now);
    return active;
  }

  /** Signs the user in: a new session (never a reused id: no session fixation) and its cookie. */
  async start(request: FastifyRequest, reply: FastifyReply, user: User, now: number, amr: string[]): Promise<{ sid: string; authTime: number }> {
    await this.end(request, reply);
    const value = randomToken();
    const sid = randomToken();
    await this.repository.createSession({
      sessionHash: sha256(value),
      sid,
      userId: user.userId,
      authTime: now,
      amr,
      acr: null,
      expiresAt: now + this.lifetimes.absoluteLifetime,
      now,
    });
    this.cookies.setCookie(reply, SESSION_COOKIE, value, { maxAge: this.lifetimes.absoluteLifetime });
    return { sid, authTime: now };
  }

  async end(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const value = this.cookies.readCookie(request, SESSION_COOKIE);
    if (value !== undefined) await this.repository.deleteSession(sha256(value));
    this.cookies.clearCookie(reply, SESSION_COOKIE);
    // A new session gets a new CSRF nonce too (OWASP: renew tokens when the privilege changes).
    this.cookies.clearCookie(reply, CSRF_COOKIE);
  }
}
