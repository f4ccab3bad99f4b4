import type { Delegation } from '../../model.js';
import { parseJsonList, splitScope } from '../json.js';
import type { DelegationColumns } from '../schema.js';

export function delegationFromRow(row: DelegationColumns): Delegation {
  return {
    clientId: row.client_id,
    userId: row.user_id,
    grantId: row.grant_id,
    scope: splitScope(row.scope),
    resources: parseJsonList(row.resources),
    sid: row.sid,
    authTime: row.auth_time,
    acr: row.acr,
    amr: parseJsonList(row.amr),
  };
}

export function delegationToRow(d: Delegation): DelegationColumns {
  return {
    client_id: d.clientId,
    user_id: d.userId,
    grant_id: d.grantId,
    scope: d.scope.join(' '),
    resources: JSON.stringify(d.resources),
    sid: d.sid,
    auth_time: d.authTime,
    acr: d.acr,
    amr: JSON.stringify(d.amr),
  };
}
