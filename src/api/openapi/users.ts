import { responses } from '../responses';
import { schemas } from '../validation';
import { type Operation, userCommon } from './operation';

/** Users: sign-up, the caller, an operator's credit. */
export const USER_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/users',
    operationId: 'createUser',
    summary: 'Create a user (returns its bearer token)',
    tag: 'users',
    auth: 'none',
    body: schemas.createUser,
    success: { 201: { description: 'the user, with its token', schema: responses.createdUser } },
    errors: ['VALIDATION_FAILED'],
  },
  {
    method: 'get',
    path: '/api/users/me',
    operationId: 'getMe',
    summary: 'The caller',
    tag: 'users',
    auth: 'bearer',
    success: { 200: { description: 'the caller', schema: responses.user } },
    errors: [...userCommon, 'NOT_FOUND'],
  },
  {
    method: 'post',
    path: '/api/admin/users/:id/credits',
    operationId: 'creditUser',
    summary: "Credit a user's balance",
    tag: 'admin',
    auth: 'admin',
    body: schemas.credit,
    success: { 200: { description: 'the new balance', schema: responses.credited } },
    errors: ['VALIDATION_FAILED', 'UNAUTHORIZED', 'NOT_FOUND'],
  },
];
