import { responses } from '../responses';
import { schemas } from '../validation';
import { type Operation, pathIdNotFound } from './operation';

/** Shows: an operator creates one; anyone reads it and its seats. */
export const SHOW_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/admin/shows',
    operationId: 'createShow',
    summary: 'Create a show and its seats',
    tag: 'admin',
    auth: 'admin',
    body: schemas.createShow,
    success: { 201: { description: 'the show', schema: responses.createdShow } },
    errors: ['VALIDATION_FAILED', 'UNAUTHORIZED'],
  },
  {
    method: 'get',
    path: '/api/shows/:id',
    operationId: 'getShow',
    summary: 'A show, with its seats available',
    tag: 'shows',
    auth: 'none',
    success: { 200: { description: 'the show', schema: responses.show } },
    errors: pathIdNotFound,
  },
  {
    method: 'get',
    path: '/api/shows/:id/seats',
    operationId: 'getSeats',
    summary: "A show's seats",
    tag: 'shows',
    auth: 'none',
    success: { 200: { description: 'every seat of the show', schema: responses.seats } },
    errors: pathIdNotFound,
  },
];
