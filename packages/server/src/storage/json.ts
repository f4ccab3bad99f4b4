/** JSON columns: lists and objects written by us, read back defensively. */
export function parseJsonList(text: string): string[] {
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function splitScope(text: string): string[] {
  return text === '' ? [] : text.split(' ');
}
