// The default of DEV_SIGN_IN for the development launchers (npm start, npm run dev, npm run cluster):
// on, unless the environment brings a real key source or production, beside which the service
// refuses the name sign-in (it signs with the published development secret only).
export function devSignInDefault(env) {
  const ownKeys = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL'].some((k) => env[k]) || env.NODE_ENV === 'production';
  return String(!ownKeys);
}
