#!/usr/bin/env node
// Prints a client token for trying the service: `npm run token -- <userId> [hours]`.
// Signs with JWT_SECRET (from the shell or ./.env, as npm start reads it), or with the development
// secret the service uses when JWT_SECRET is unset.
import { existsSync } from 'node:fs';
import { SignJWT } from 'jose';

if (existsSync('.env')) process.loadEnvFile('.env');
const DEV_JWT_SECRET = 'dev-only-insecure-jwt-secret-change-me';
const [userId, hours = '12'] = process.argv.slice(2);
if (!userId) {
  console.error('usage: npm run token -- <userId> [hours]');
  process.exit(2);
}
const secret = new TextEncoder().encode(process.env.JWT_SECRET || DEV_JWT_SECRET);
const token = await new SignJWT({ name: userId })
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setSubject(userId)
  .setIssuedAt()
  .setExpirationTime(`${Number(hours)}h`)
  .sign(secret);
console.log(token);
