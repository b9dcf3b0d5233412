"""The database workloads written the way a flask user would write them: the hello app of
app_flask.py with two more routes, the query code of app_db.py (one psycopg connection per app
thread), a dict returned as JSON and a Jinja template (templates/fortunes.html, autoescaped)."""

from flask import render_template

import app_db
from app_flask import app


@app.route("/db")
def db():
    world_id, number = app_db.random_world()
    return {"id": world_id, "randomNumber": number}


@app.route("/fortunes")
def fortunes():
    return render_template("fortunes.html", fortunes=app_db.fortunes())
