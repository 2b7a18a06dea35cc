// Prints, one JSON line each, the 10,000 real user agents of the npm package
// `user-agents` with their device category, and what ua-parser-js (a
// classifier nobody here wrote) makes of each: the corpus the device and OS
// rules are checked against (tests/edge/user_agents.rs).
// Usage: node tests/ua/classify.js NODE_MODULES_DIR
const path = require('path');
const modules = process.argv[2];
const UserAgent = require(path.join(modules, 'user-agents'));
const UAParser = require(path.join(modules, 'ua-parser-js'));

for (const entry of new UserAgent().top()) {
  const parsed = new UAParser(entry.userAgent).getResult();
  process.stdout.write(JSON.stringify({
    user_agent: entry.userAgent,
    category: entry.deviceCategory,
    platform: entry.platform,
    parser_device: parsed.device.type || null,
    parser_os: parsed.os.name || null,
  }) + '\n');
}
