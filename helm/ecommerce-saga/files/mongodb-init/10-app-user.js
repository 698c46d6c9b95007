// Run by the mongo image's entrypoint once, on the first start of an empty volume, as root: the
// app's own user, with readWrite on the shop's database only. The app never connects as root.
// The Helm chart (templates/mongodb.yaml) and compose.yaml both mount this file.
const fs = require("fs");
const database = process.env.SHOP_APP_DATABASE;
const username = process.env.SHOP_APP_USERNAME;
const password = fs.readFileSync(process.env.SHOP_APP_PASSWORD_FILE, "utf8").trim();
db.getSiblingDB(database).createUser({
  user: username,
  pwd: password,
  roles: [{ role: "readWrite", db: database }],
});
print(`created the app user ${username} (readWrite on ${database})`);
