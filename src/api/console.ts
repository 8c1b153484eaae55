import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { Router } from 'express';

/** The repository (or installed package) root: where console/ and node_modules/ are, from src/ under tsx or dist/ when bundled. */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'console'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`console/ not found above ${__dirname}`);
  }
}

/**
 * The operator console at /console: a few static ES modules (console/), preact + htm from the
 * service's own node_modules (no CDN), under the same strict CSP as everything else (no inline
 * script or style). The page talks to /api/admin/* with the admin token the operator typed,
 * which it keeps in the tab's sessionStorage only.
 */
export function consoleRoutes(): Router {
  const root = packageRoot();
  const router = Router();
  const vendor = path.join(root, 'node_modules', 'htm', 'preact', 'standalone.module.js');
  router.get('/vendor/preact-htm.js', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600');
    res.sendFile(vendor);
  });
  router.use(express.static(path.join(root, 'console'), { index: 'index.html', maxAge: 0, fallthrough: true }));
  return router;
}
