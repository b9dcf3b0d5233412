"""The hello workload written the way a bottle user would write it."""

import bottle

app = bottle.Bottle()


@app.route("/hello")
def hello():
    bottle.response.content_type = "text/plain"
    return "Hello, world!"
