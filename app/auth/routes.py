"""Login and logout pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth.service import authenticate
from app.extensions import db_session, login_manager
from app.models import User

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    name = StringField("User name", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=500)])


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    try:
        return db_session().get(User, int(user_id))
    except ValueError:
        return None


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would hand the session to anyone's page.
    # Browsers read "\\" as "/", so "/\\evil.example" would leave the site too.
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("queues.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(session=db_session(), name=form.name.data, password=form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")), code=303)
        flash("Unknown user name or wrong password.", "error")
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" else 401


@bp.post("/logout")
@login_required
def logout():
    """Logs out (the review workspace gives the user's items back on the signal)."""
    logout_user()
    return redirect(url_for("auth.login"), code=303)
