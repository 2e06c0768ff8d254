/**
 * The one naming rule for settings: a dotted camelCase key becomes a kebab
 * flag and an upper-snake environment variable with the CRI_ADAPTER_ prefix.
 */
export const ENV_PREFIX = 'CRI_ADAPTER_';

function words(key: string): string[] {
  return key
    .split('.')
    .flatMap((segment) => segment.split(/(?=[A-Z])/))
    .map((w) => w.toLowerCase());
}

export function flagName(key: string): string {
  return words(key).join('-');
}

export function envName(key: string): string {
  return ENV_PREFIX + words(key).join('_').toUpperCase();
}
