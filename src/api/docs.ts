import path from 'node:path';
import express, { Router, type RequestHandler } from 'express';

/**
 * GET /docs: /openapi.json rendered by Swagger UI, every file from the service itself (the
 * swagger-ui-dist package under /docs/assets/, and this page and its start script, which are
 * written here). No CDN, and no inline script: the start script is its own file.
 *
 * The page keeps the service's strict CSP (script-src and style-src 'self', images 'self' and
 * data:). Swagger UI's stylesheet is a file, its icons are data: URIs, and the inline styles its
 * React components set go through the CSSOM (element.style), which style-src does not govern;
 * so nothing is loosened for /docs. Its validator badge (an outside service) is switched off.
 */
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>seat-saga API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

const INIT = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', validatorUrl: null, deepLinking: true });
});
`;

const swaggerUiDir = () => path.dirname(require.resolve('swagger-ui-dist/package.json'));

export function docsRoutes(): Router {
  const router = Router();
  const page: RequestHandler = (_req, res) => {
    res.type('html').send(PAGE);
  };
  router.get('/', page);
  router.get('/init.js', (_req, res) => {
    res.type('application/javascript').send(INIT);
  });
  // Only the files the page loads (not the package's own index.html and its inline-configured initializer).
  const allowed = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'favicon-16x16.png']);
  const assets = express.static(swaggerUiDir(), { index: false, maxAge: '1h', fallthrough: true });
  router.use('/assets', (req, res, next) => (allowed.has(req.path.slice(1)) ? assets(req, res, next) : next()));
  return router;
}
