/** Parley's own version, reported by `GET /api/health` and `parley --version`. */
export const PARLEY_VERSION = '0.1.0';
