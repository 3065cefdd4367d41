/**
 * Where "Queries (live status)" goes (pure: tested with node --test): this server's
 * query-cache status page, under its base URL (`/user/<name>/<server>/` under JupyterHub).
 */

export const STATUS_PATH = 'civis/queries/status';

export function statusPageUrl(baseUrl: string): string {
  return baseUrl.replace(/\/?$/, '/') + STATUS_PATH;
}
