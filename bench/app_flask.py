"""The hello workload written the way a flask user would write it."""

from flask import Flask

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "Hello, world!", 200, {"Content-Type": "text/plain"}
